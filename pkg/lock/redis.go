package lock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a Locker on Redis: SET key token NX PX takes the lock; Extend and
// Release run scripts that compare the token first, so a holder whose lease
// ran out cannot touch the next holder's lock. One Redis node, not Redlock:
// a failover that loses the latest writes can hand a lock out twice, which
// the idempotent reconciler tolerates.
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRedis returns a Locker whose keys are prefix+"lock:"+key.
func NewRedis(rdb redis.UniversalClient, prefix string) *Redis {
	return &Redis{rdb: rdb, prefix: prefix}
}

var (
	extendScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)
	releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)
)

// TryAcquire implements Locker.
func (r *Redis) TryAcquire(ctx context.Context, key string, ttl time.Duration) (Lease, error) {
	tok := newToken()
	k := r.prefix + "lock:" + key
	err := r.rdb.SetArgs(ctx, k, tok, redis.SetArgs{Mode: "NX", TTL: ms(ttl)}).Err()
	if errors.Is(err, redis.Nil) {
		return nil, ErrHeld
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", key, err)
	}
	return &redisLease{r: r, key: key, rkey: k, token: tok}, nil
}

// Acquire implements Locker.
func (r *Redis) Acquire(ctx context.Context, key string, ttl time.Duration) (Lease, error) {
	return acquire(ctx, r, key, ttl)
}

type redisLease struct {
	r     *Redis
	key   string
	rkey  string
	token string
}

func (l *redisLease) Extend(ctx context.Context, ttl time.Duration) error {
	n, err := extendScript.Run(ctx, l.r.rdb, []string{l.rkey}, l.token, ms(ttl).Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("extend %s: %w", l.key, err)
	}
	if n == 0 {
		return fmt.Errorf("extend %s: %w", l.key, ErrLost)
	}
	return nil
}

func (l *redisLease) Release(ctx context.Context) error {
	n, err := releaseScript.Run(ctx, l.r.rdb, []string{l.rkey}, l.token).Int()
	if err != nil {
		return fmt.Errorf("release %s: %w", l.key, err)
	}
	if n == 0 {
		return fmt.Errorf("release %s: %w", l.key, ErrLost)
	}
	return nil
}

// ms rounds up to whole milliseconds, Redis's unit; 0 would mean "no expiry"
// to SET, which must never happen to a lock.
func ms(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return time.Millisecond
	}
	return d.Truncate(time.Millisecond)
}
