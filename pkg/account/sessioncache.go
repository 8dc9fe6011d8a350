package account

import (
	"context"
	"sync"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
)

// DefaultSessionCacheTTL is how long Authenticate trusts a session it
// validated against the store. Every API request authenticates, and the
// JWT check plus the session and user reads were most of a read request's
// cost; a session ended on another node (or by `vmd user` on the same
// database) stops working within this time, the same bound the login
// registry (pkg/login) keeps for closing what the session opened.
const DefaultSessionCacheTTL = time.Second

// maxCachedSessions bounds the cache; past it, the cache starts over.
const maxCachedSessions = 10000

// sessionCache remembers, by the exact token, sessions Authenticate
// validated. Any write of this service to users or sessions empties it
// (cacheClearingStore), so on this node a logout, a revocation, a password
// change or a disabled user takes effect for the next request; writes made
// elsewhere take effect within the TTL.
type sessionCache struct {
	ttl time.Duration // <= 0: nothing is cached

	mu      sync.Mutex
	gen     uint64 // bumped by clear; a validation that saw another gen is not cached
	entries map[string]cachedSession
}

type cachedSession struct {
	user    store.User
	sess    store.Session
	expires time.Time // the earlier of the token's and the session's expiry (the service's clock)
	until   time.Time // wall clock: the TTL bounds how stale the store's answer may be
}

func newSessionCache(ttl time.Duration) *sessionCache {
	return &sessionCache{ttl: ttl, entries: map[string]cachedSession{}}
}

// get returns a token's cached session and the generation to pass to put
// when there is none.
func (c *sessionCache) get(token string) (cachedSession, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[token]
	if ok && time.Now().Before(e.until) {
		return e, c.gen, true
	}
	if ok {
		delete(c.entries, token)
	}
	return cachedSession{}, c.gen, false
}

// put caches a validation that started at generation gen, unless the
// cache was cleared since: the store may have changed under it.
func (c *sessionCache) put(token string, gen uint64, e cachedSession) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.entries) >= maxCachedSessions {
		c.entries = map[string]cachedSession{}
	}
	e.until = time.Now().Add(c.ttl)
	c.entries[token] = e
}

// clear forgets every session and voids validations in flight.
func (c *sessionCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if len(c.entries) > 0 {
		c.entries = map[string]cachedSession{}
	}
}

// cacheClearingStore is the store as the account service uses it: every
// write that can change Authenticate's answer (a session's end, a user's
// password, flags or quota, a user's removal) empties the session cache
// once the store has it.
type cacheClearingStore struct {
	store.Store
	cache *sessionCache
}

func (s cacheClearingStore) SetVerified(ctx context.Context, userID string) error {
	defer s.cache.clear()
	return s.Store.SetVerified(ctx, userID)
}

func (s cacheClearingStore) SetPasswordHash(ctx context.Context, userID, hash string) error {
	defer s.cache.clear()
	return s.Store.SetPasswordHash(ctx, userID, hash)
}

func (s cacheClearingStore) SetDisabled(ctx context.Context, userID string, disabled bool) error {
	defer s.cache.clear()
	return s.Store.SetDisabled(ctx, userID, disabled)
}

func (s cacheClearingStore) SetQuota(ctx context.Context, userID string, q api.Quota) error {
	defer s.cache.clear()
	return s.Store.SetQuota(ctx, userID, q)
}

func (s cacheClearingStore) DeleteUser(ctx context.Context, userID string) error {
	defer s.cache.clear()
	return s.Store.DeleteUser(ctx, userID)
}

func (s cacheClearingStore) RevokeSession(ctx context.Context, id string, at time.Time) error {
	defer s.cache.clear()
	return s.Store.RevokeSession(ctx, id, at)
}

func (s cacheClearingStore) RevokeUserSessions(ctx context.Context, userID, exceptID string, at time.Time) ([]string, error) {
	defer s.cache.clear()
	return s.Store.RevokeUserSessions(ctx, userID, exceptID, at)
}
