package console

import (
	"context"
	"sync"
	"time"

	"github.com/vmdhq/vmd/pkg/onetime"
)

// Grant is what a console token allows: one connection of one user to one
// VM's console, opened before ExpiresAt.
type Grant struct {
	UserID    string
	VMID      string
	SessionID string // the login session that asked for it; "" for none
	IssuedAt  time.Time
	ExpiresAt time.Time
	// ViewOnly makes the proxy drop the session's input (inputFilter).
	ViewOnly bool
	// LinkID is the share link the token was made through; "" for none.
	LinkID string
	// Kind is what the token opens: "" the console, KindPortForward one
	// TCP stream to the guest's Port. A token of one kind opens nothing else.
	Kind string `json:",omitempty"`
	Port int    `json:",omitempty"`
}

// TokenStore keeps grants under the SHA-256 of their token, so a leaked
// store (or a Redis dump) gives no usable token. A Redis one comes later.
type TokenStore interface {
	// Put stores g under hash until g.ExpiresAt.
	Put(ctx context.Context, hash string, g Grant) error
	// Get returns the grant under hash without using it up, so a request
	// can be checked in full before its token is spent; ErrTokenInvalid
	// when it is missing.
	Get(ctx context.Context, hash string) (Grant, error)
	// Take removes and returns the grant under hash in one step, so a
	// token opens at most one connection; ErrTokenInvalid when it is missing
	// or already taken.
	Take(ctx context.Context, hash string) (Grant, error)
}

// MemoryTokens is the in-process TokenStore.
type MemoryTokens struct {
	mu     sync.Mutex
	grants map[string]Grant
	now    func() time.Time
}

// NewMemoryTokens returns an empty in-process TokenStore; now may be nil.
func NewMemoryTokens(now func() time.Time) *MemoryTokens {
	if now == nil {
		now = time.Now
	}
	return &MemoryTokens{grants: map[string]Grant{}, now: now}
}

// Put implements TokenStore; it also drops expired grants, which keeps the
// map bounded by the issue rate times the TTL without a sweeper goroutine.
func (m *MemoryTokens) Put(_ context.Context, hash string, g Grant) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for h, old := range m.grants {
		if !now.Before(old.ExpiresAt) {
			delete(m.grants, h)
		}
	}
	m.grants[hash] = g
	return nil
}

// Get implements TokenStore.
func (m *MemoryTokens) Get(_ context.Context, hash string) (Grant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.grants[hash]
	if !ok {
		return Grant{}, ErrTokenInvalid
	}
	return g, nil
}

// Take implements TokenStore.
func (m *MemoryTokens) Take(_ context.Context, hash string) (Grant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.grants[hash]
	if !ok {
		return Grant{}, ErrTokenInvalid
	}
	delete(m.grants, hash)
	return g, nil
}

// newToken returns a random token and its hash (the one generator, onetime).
func newToken() (tok, hash string, err error) {
	if tok, err = onetime.New(); err != nil {
		return "", "", err
	}
	return tok, hashToken(tok), nil
}

func hashToken(tok string) string { return onetime.Hash(tok) }
