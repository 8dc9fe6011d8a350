package redisx

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/console"
	"github.com/vmdhq/vmd/pkg/lock"
	"github.com/vmdhq/vmd/pkg/queue"
	"github.com/vmdhq/vmd/pkg/ratelimit"
	"github.com/vmdhq/vmd/pkg/redisx/redistest"
)

func TestOpenMemory(t *testing.T) {
	b, err := Open(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, ok := b.Queue.(*queue.Memory); !ok {
		t.Fatalf("queue %T", b.Queue)
	}
	if _, ok := b.Locker.(*lock.Memory); !ok {
		t.Fatalf("locker %T", b.Locker)
	}
	if _, ok := b.Limiter.(*ratelimit.Memory); !ok {
		t.Fatalf("limiter %T", b.Limiter)
	}
	if _, ok := b.Tokens.(*console.MemoryTokens); !ok {
		t.Fatalf("tokens %T", b.Tokens)
	}
	if b.Redis != nil {
		t.Fatal("redis client in memory mode")
	}
}

func TestOpenRedis(t *testing.T) {
	redistest.Client(t) // fails the test when the server is down
	ctx := context.Background()
	u := redistest.URL()
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	prefix := "vmdtest:" + t.Name() + ":"
	b, err := Open(ctx, u+sep+"prefix="+prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = redistest.DeletePrefix(context.Background(), b.Redis, prefix)
		_ = b.Close()
	})
	if b.Prefix != prefix {
		t.Fatalf("prefix %q, want %q", b.Prefix, prefix)
	}
	if _, ok := b.Queue.(*queue.Redis); !ok {
		t.Fatalf("queue %T", b.Queue)
	}
	if _, ok := b.Locker.(*lock.Redis); !ok {
		t.Fatalf("locker %T", b.Locker)
	}
	if _, ok := b.Limiter.(*ratelimit.Redis); !ok {
		t.Fatalf("limiter %T", b.Limiter)
	}
	if _, ok := b.Tokens.(*console.RedisTokens); !ok {
		t.Fatalf("tokens %T", b.Tokens)
	}
	// The keys land under the prefix.
	if _, err := b.Locker.TryAcquire(ctx, "vm/1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Redis.Exists(ctx, prefix+"lock:vm/1").Result(); err != nil || n != 1 {
		t.Fatalf("lock key not under prefix: %d, %v", n, err)
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		url, want string
	}{
		{"redis://:s3cretpw@127.0.0.1:1/0", "127.0.0.1:1"},
		{"redis://user:s3cretpw@127.0.0.1:1/0?dial_timeout=1s", "127.0.0.1:1"},
		{"http://user:s3cretpw@127.0.0.1:6379/0", "parse redis url"},
		{"redis://user:s3cretpw@127.0.0.1:6379/0?bogus=1", "parse redis url"},
		{"redis://user:s3cretpw@[::1/0", "parse redis url"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			b, err := Open(ctx, tc.url)
			if err == nil {
				_ = b.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cretpw") {
				t.Fatalf("error leaks the password: %q", err)
			}
		})
	}
}

// TestPing: Ping answers for /readyz, nil without Redis, an error naming
// the address once Redis is gone.
func TestPing(t *testing.T) {
	ctx := context.Background()
	mem, err := Open(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	if err := mem.Ping(ctx); err != nil {
		t.Fatalf("single-node Ping = %v", err)
	}
	srv := redistest.StartServer(t)
	b, err := Open(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Ping(ctx); err != nil {
		t.Fatalf("Ping = %v", err)
	}
	srv.Kill()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.Ping(pctx); err == nil || !strings.Contains(err.Error(), "redis.sock") {
		t.Fatalf("Ping after the server died = %v, want an error naming its address", err)
	}
}
