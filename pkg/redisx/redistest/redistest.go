// Package redistest gives each test its own key prefix on a real Redis
// (VMD_TEST_REDIS_URL, default redis://127.0.0.1:6379/0) and deletes the
// test's keys afterwards. Tests fail, not skip, when Redis is unreachable.
//
// It imports only go-redis so that any package's internal tests can use it
// without an import cycle through redisx.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is used when VMD_TEST_REDIS_URL is unset.
const DefaultURL = "redis://127.0.0.1:6379/0"

// URL is the test server's URL.
func URL() string {
	if u := os.Getenv("VMD_TEST_REDIS_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Client connects to the test Redis and returns a fresh key prefix
// ("vmdtest:<Test>:<random>:"); every key under it is deleted at cleanup.
func Client(t testing.TB) (*redis.Client, string) {
	t.Helper()
	opt, err := redis.ParseURL(URL())
	if err != nil {
		t.Fatalf("parse VMD_TEST_REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		t.Fatalf("redis at %s unreachable (set VMD_TEST_REDIS_URL): %v", opt.Addr, err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	prefix := "vmdtest:" + name + ":" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		defer rdb.Close()
		if err := DeletePrefix(context.Background(), rdb, prefix); err != nil {
			t.Errorf("clean up redis keys %s*: %v", prefix, err)
		}
	})
	return rdb, prefix
}

// DeletePrefix deletes every key starting with prefix.
func DeletePrefix(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	// Glob metacharacters in a test name would widen the match.
	pat := strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`).Replace(prefix) + "*"
	iter := rdb.Scan(ctx, 0, pat, 500).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := rdb.Del(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return rdb.Del(ctx, batch...).Err()
	}
	return nil
}
