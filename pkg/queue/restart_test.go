package queue

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/redisx/redistest"
)

// redisServer runs a private redis-server that persists every write, so it
// can be restarted without losing data (the shared test Redis keeps nothing).
type redisServer struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
}

func startRedisServer(t *testing.T) *redisServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &redisServer{t: t, port: port, dir: t.TempDir()}
	s.start()
	t.Cleanup(func() { s.stop() })
	return s
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *redisServer) start() {
	s.t.Helper()
	s.cmd = exec.Command("/usr/bin/redis-server",
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--appendonly", "yes", "--appendfsync", "always",
		"--dir", s.dir, "--save", "")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1})
	defer rdb.Close()
	testutil.Eventually(s.t, 10*time.Second, "redis-server on "+s.addr(), func() bool {
		return rdb.Ping(context.Background()).Err() == nil
	})
}

func (s *redisServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

// TestRedisRestartLosesNoJob restarts Redis under a running consumer: every
// job, published before or after the restart, is handled at least once, and
// the consumer reconnects by itself.
func TestRedisRestartLosesNoJob(t *testing.T) {
	srv := startRedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.addr(), DialTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	q := NewRedis(rdb, "t:", Options{MinIdle: time.Second, ClaimEvery: 200 * time.Millisecond, Block: 200 * time.Millisecond})
	t.Cleanup(func() { _ = q.Close() })
	ctx := context.Background()

	const n = 100
	pub := func(from int) {
		for i := from; i < from+n; i++ {
			if err := q.Publish(ctx, Job{VMID: fmt.Sprintf("vm-%03d", i), Node: "n1", Reason: "start"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	pub(0)
	var mu sync.Mutex
	handled := map[string]int{}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(handled) }
	consume(t, q, "n1", "c1", func(_ context.Context, j Job) error {
		time.Sleep(5 * time.Millisecond) // slow enough that jobs are in flight when Redis goes away
		mu.Lock()
		handled[j.VMID]++
		mu.Unlock()
		return nil
	})
	testutil.Eventually(t, waitTimeout, "some jobs before the restart", func() bool { return count() >= 30 })
	srv.stop()
	atStop := count()
	// The subject: Redis stays down a while, so the consumer sees errors and
	// backs off before it comes back.
	time.Sleep(500 * time.Millisecond)
	srv.start()
	t.Logf("restarted redis after %d of %d jobs", atStop, n)
	pub(n)
	testutil.Eventually(t, waitTimeout, "every job after the restart", func() bool { return count() == 2*n })
	testutil.Eventually(t, waitTimeout, "depth 0", func() bool { d, err := q.Depth(ctx, "n1"); return err == nil && d == 0 })
	mu.Lock()
	defer mu.Unlock()
	dup := 0
	for _, c := range handled {
		dup += c - 1
	}
	t.Logf("%d jobs handled, %d more than once", len(handled), dup)
}

// BenchmarkRedisQueue measures publish-to-ack throughput of one consumer on
// the shared test Redis.
func BenchmarkRedisQueue(b *testing.B) {
	rdb, prefix := redistest.Client(b)
	q := NewRedis(rdb, prefix, Options{})
	defer q.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(b.N)
	go func() {
		_ = q.Consume(ctx, "n1", "c1", func(context.Context, Job) error { wg.Done(); return nil })
	}()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := q.Publish(ctx, Job{VMID: "vm", Node: "n1", Reason: "start"}); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
}
