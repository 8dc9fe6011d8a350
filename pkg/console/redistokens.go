package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisTokens is a TokenStore shared by every node, so a token issued by one
// node opens the console through any other. Keys are the token hashes, never
// the tokens; Redis expires them at ExpiresAt.
type RedisTokens struct {
	rdb    redis.UniversalClient
	prefix string
	now    func() time.Time
}

// NewRedisTokens returns a TokenStore whose keys are prefix+"ctok:"+hash.
func NewRedisTokens(rdb redis.UniversalClient, prefix string) *RedisTokens {
	return &RedisTokens{rdb: rdb, prefix: prefix, now: time.Now}
}

// Put implements TokenStore. A grant already expired is not stored.
func (r *RedisTokens) Put(ctx context.Context, hash string, g Grant) error {
	ttl := g.ExpiresAt.Sub(r.now())
	if ttl < time.Millisecond {
		return nil
	}
	b, err := json.Marshal(g)
	if err != nil {
		return fmt.Errorf("store console token: %w", err)
	}
	if err := r.rdb.Set(ctx, r.prefix+"ctok:"+hash, b, ttl).Err(); err != nil {
		return fmt.Errorf("store console token: %w", err)
	}
	return nil
}

// Get implements TokenStore.
func (r *RedisTokens) Get(ctx context.Context, hash string) (Grant, error) {
	return r.decode(r.rdb.Get(ctx, r.prefix+"ctok:"+hash).Bytes())
}

// Take implements TokenStore with GETDEL, so of any number of concurrent
// callers on any nodes exactly one gets the grant.
func (r *RedisTokens) Take(ctx context.Context, hash string) (Grant, error) {
	return r.decode(r.rdb.GetDel(ctx, r.prefix+"ctok:"+hash).Bytes())
}

func (r *RedisTokens) decode(b []byte, err error) (Grant, error) {
	if errors.Is(err, redis.Nil) {
		return Grant{}, ErrTokenInvalid
	}
	if err != nil {
		return Grant{}, fmt.Errorf("read console token: %w", err)
	}
	var g Grant
	if err := json.Unmarshal(b, &g); err != nil {
		return Grant{}, fmt.Errorf("read console token: %w", err)
	}
	return g, nil
}
