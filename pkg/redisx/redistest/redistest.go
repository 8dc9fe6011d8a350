// Package redistest gives each test its own key prefix on a real Redis
// (VMD_TEST_REDIS_URL, default redis://127.0.0.1:6379/0) and deletes the
// test's keys afterwards. Tests fail, not skip, when Redis is unreachable.
//
// StartServer runs a redis-server of the test's own, which a test may kill.
//
// It imports only go-redis so that any package's internal tests can use it
// without an import cycle through redisx.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
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

// Server is a redis-server of a test's own, on a unix socket, for tests
// that must see Redis go away without touching the shared one.
type Server struct {
	// URL reaches the server (unix://…).
	URL  string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartServer starts redis-server (no persistence) on a unix socket in a
// fresh directory and returns once it answers PING. It is killed when t
// ends, if Kill has not done so before. The test fails when redis-server
// is not installed.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is needed by this test (apt-get install redis-server): %v", err)
	}
	dir, err := os.MkdirTemp("", "vmdr") // short: a socket path is limited to 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command(bin, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	s := &Server{URL: "unix://" + sock, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	t.Cleanup(s.Kill)
	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: sock, MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return s
		}
		select {
		case <-s.done:
			t.Fatalf("redis-server exited at start: %v", err)
		case <-time.After(20 * time.Millisecond): // polling for the socket to answer
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not answer: %v", sock, err)
		}
	}
}

// Kill stops the server at once and waits until it is gone.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}
