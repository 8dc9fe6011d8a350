package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a fixed-window Limiter shared by every node: one counter key per
// limited key, expiring with its window.
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRedis returns a Limiter whose keys are prefix+"rl:"+key.
func NewRedis(rdb redis.UniversalClient, prefix string) *Redis {
	return &Redis{rdb: rdb, prefix: prefix}
}

// hitScript counts and starts the window in one step. PEXPIRE NX sets the
// expiry only on the first hit (or on a key that somehow lost its TTL), so
// later hits never stretch the window. Needs Redis 7.0.
var hitScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1], 'NX')
return {n, redis.call('PTTL', KEYS[1])}`)

// Hit implements Limiter.
func (r *Redis) Hit(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error) {
	w := windowMS(window)
	res, err := hitScript.Run(ctx, r.rdb, []string{r.prefix + "rl:" + key}, w).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("rate limit %s: %w", key, err)
	}
	return res[0] <= int64(limit), retry(res[1], w), nil
}

// reserveScript counts only below the limit, so concurrent callers cannot
// all pass a check made before any of them counted.
var reserveScript = redis.NewScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[2]) then
  return {0, redis.call('PTTL', KEYS[1])}
end
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1], 'NX')
return {1, redis.call('PTTL', KEYS[1])}`)

// Reserve implements Limiter.
func (r *Redis) Reserve(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error) {
	w := windowMS(window)
	res, err := reserveScript.Run(ctx, r.rdb, []string{r.prefix + "rl:" + key}, w, limit).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("rate limit %s: %w", key, err)
	}
	return res[0] == 1, retry(res[1], w), nil
}

// refundScript decrements an existing, positive counter only: a window that
// ended (key gone) is not restarted and never goes negative.
var refundScript = redis.NewScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then redis.call('DECR', KEYS[1]) end
return 0`)

// Refund implements Limiter.
func (r *Redis) Refund(ctx context.Context, key string) error {
	if err := refundScript.Run(ctx, r.rdb, []string{r.prefix + "rl:" + key}).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("rate limit refund %s: %w", key, err)
	}
	return nil
}

// Peek implements Limiter.
func (r *Redis) Peek(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error) {
	k := r.prefix + "rl:" + key
	pipe := r.rdb.Pipeline()
	get := pipe.Get(ctx, k)
	ttl := pipe.PTTL(ctx, k)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return false, 0, fmt.Errorf("rate limit %s: %w", key, err)
	}
	n, err := get.Int64()
	if errors.Is(err, redis.Nil) {
		// No window yet: like Memory, one would start now.
		return limit > 0, window, nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("rate limit %s: %w", key, err)
	}
	return n < int64(limit), retry(ttl.Val().Milliseconds(), windowMS(window)), nil
}

// Reset implements Limiter.
func (r *Redis) Reset(ctx context.Context, key string) error {
	if err := r.rdb.Del(ctx, r.prefix+"rl:"+key).Err(); err != nil {
		return fmt.Errorf("rate limit reset %s: %w", key, err)
	}
	return nil
}

func windowMS(window time.Duration) int64 {
	return max(window.Milliseconds(), 1)
}

// retry turns a PTTL reply into the time until the window resets; -1/-2
// (no expiry, key gone between commands) mean a window is just starting.
func retry(pttl, windowMS int64) time.Duration {
	if pttl < 0 {
		pttl = windowMS
	}
	return time.Duration(pttl) * time.Millisecond
}
