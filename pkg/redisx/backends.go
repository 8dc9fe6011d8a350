package redisx

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/vmdhq/vmd/pkg/console"
	"github.com/vmdhq/vmd/pkg/lock"
	"github.com/vmdhq/vmd/pkg/queue"
	"github.com/vmdhq/vmd/pkg/ratelimit"
)

// Backends are the pieces that are in-process on a single node and shared
// through Redis in a cluster.
type Backends struct {
	Queue   queue.Queue
	Locker  lock.Locker
	Limiter ratelimit.Limiter
	Tokens  console.TokenStore
	// Redis is the shared client, nil in single-node mode; Prefix starts
	// every key vmd writes there.
	Redis  *redis.Client
	Prefix string
}

// Open returns the Redis-backed backends for redisURL, or the in-process
// ones when redisURL is empty. It pings Redis first; the error names
// host:port, never the password.
func Open(ctx context.Context, redisURL string) (*Backends, error) {
	return OpenWith(ctx, redisURL, queue.Options{})
}

// OpenWith is Open with queue options (redelivery timing, logger).
func OpenWith(ctx context.Context, redisURL string, qopts queue.Options) (*Backends, error) {
	if redisURL == "" {
		return &Backends{
			Queue:   queue.NewMemory(qopts),
			Locker:  lock.NewMemory(),
			Limiter: ratelimit.NewMemory(),
			Tokens:  console.NewMemoryTokens(nil),
		}, nil
	}
	rdb, c, err := Dial(ctx, redisURL)
	if err != nil {
		return nil, err
	}
	if err := checkVersion(ctx, rdb); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("redis at %s: %w", c.Addr(), err)
	}
	return &Backends{
		Queue:   queue.NewRedis(rdb, c.Prefix, qopts),
		Locker:  lock.NewRedis(rdb, c.Prefix),
		Limiter: ratelimit.NewRedis(rdb, c.Prefix),
		Tokens:  console.NewRedisTokens(rdb, c.Prefix),
		Redis:   rdb,
		Prefix:  c.Prefix,
	}, nil
}

// checkVersion refuses Redis before 7.0: the rate limiter needs PEXPIRE NX
// and queue depth needs XINFO GROUPS lag.
func checkVersion(ctx context.Context, rdb *redis.Client) error {
	info, err := rdb.InfoMap(ctx, "server").Result()
	if err != nil {
		return fmt.Errorf("read server info: %w", err)
	}
	v := info["Server"]["redis_version"]
	var major int
	if _, err := fmt.Sscanf(v, "%d.", &major); err != nil {
		return nil // a Redis-compatible server that reports no version: let it try
	}
	if major < 7 {
		return fmt.Errorf("redis %s is too old: vmd needs 7.0 or newer", v)
	}
	return nil
}

// Ping checks the Redis connection, for /readyz; nil in single-node mode,
// which has no Redis.
func (b *Backends) Ping(ctx context.Context) error {
	if b.Redis == nil {
		return nil
	}
	if err := b.Redis.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping redis at %s: %w", b.Redis.Options().Addr, err)
	}
	return nil
}

// Close stops the queue's consumers and closes the Redis connection.
func (b *Backends) Close() error {
	err := b.Queue.Close()
	if b.Redis != nil {
		if cerr := b.Redis.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
