package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/redisx/redistest"
)

// testOpts make redelivery fast enough for tests.
var testOpts = Options{MinIdle: 300 * time.Millisecond, ClaimEvery: 50 * time.Millisecond, Block: 100 * time.Millisecond}

var backends = []struct {
	name string
	open func(t *testing.T, o Options) Queue
}{
	{"Memory", func(t *testing.T, o Options) Queue {
		q := NewMemory(o)
		t.Cleanup(func() { _ = q.Close() })
		return q
	}},
	{"Redis", func(t *testing.T, o Options) Queue {
		rdb, prefix := redistest.Client(t)
		q := NewRedis(rdb, prefix, o)
		t.Cleanup(func() { _ = q.Close() })
		return q
	}},
}

func TestQueue(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, q Queue)
	}{
		{"OrderAndFields", testOrder},
		{"HandlerErrorRedelivers", testRedeliver},
		{"DepthCountsUntilAck", testDepth},
		{"ConsumersShareWithoutDuplicates", testShare},
		{"DeadConsumerJobReclaimed", testDeadConsumer},
		{"CloseStopsConsumers", testClose},
	}
	for _, b := range backends {
		for _, tc := range tests {
			t.Run(b.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				tc.run(t, b.open(t, testOpts))
			})
		}
	}
}

// consume runs q.Consume in the background until the test ends and reports
// when it returned.
func consume(t *testing.T, q Queue, node, name string, h Handler) (cancel func(), done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- q.Consume(ctx, node, name, h); close(ch) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Errorf("consumer %s did not stop", name)
		}
	})
	return cancel, ch
}

// waitTimeout bounds every wait of these tests.
const waitTimeout = 10 * time.Second

func publish(t *testing.T, q Queue, node string, n int) {
	t.Helper()
	for i := range n {
		j := Job{VMID: fmt.Sprintf("vm-%03d", i), Node: node, Reason: "start"}
		if err := q.Publish(context.Background(), j); err != nil {
			t.Fatal(err)
		}
	}
}

// seen is a concurrency-safe record of handled jobs.
type seen struct {
	mu   sync.Mutex
	jobs []Job
	by   map[string][]string // consumer -> VMIDs
}

func (s *seen) add(consumer string, j Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs = append(s.jobs, j)
	if s.by == nil {
		s.by = map[string][]string{}
	}
	s.by[consumer] = append(s.by[consumer], j.VMID)
}

func (s *seen) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.jobs)
}

func (s *seen) handler(consumer string) Handler {
	return func(_ context.Context, j Job) error { s.add(consumer, j); return nil }
}

func testOrder(t *testing.T, q Queue) {
	before := time.Now()
	publish(t, q, "n1", 20)
	publish(t, q, "n2", 5)
	var s seen
	consume(t, q, "n1", "c1", s.handler("c1"))
	testutil.Eventually(t, waitTimeout, "20 jobs", func() bool { return s.len() >= 20 })
	// A marker published after everything else comes 21st: n2's jobs, there
	// all along, had their chance to leak in first.
	if err := q.Publish(context.Background(), Job{VMID: "vm-020", Node: "n1", Reason: "start"}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitTimeout, "the marker job", func() bool { return s.len() >= 21 })
	if d, err := q.Depth(context.Background(), "n2"); err != nil || d != 5 {
		t.Fatalf("n2 depth %d, %v; want its 5 jobs untouched", d, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.jobs) != 21 {
		t.Fatalf("handled %d jobs, want 21 (other node's jobs leaked?)", len(s.jobs))
	}
	ids := map[string]bool{}
	for i, j := range s.jobs {
		if want := fmt.Sprintf("vm-%03d", i); j.VMID != want {
			t.Fatalf("job %d is %s, want %s", i, j.VMID, want)
		}
		if j.Node != "n1" || j.Reason != "start" || j.ID == "" || ids[j.ID] || j.Enqueued.Before(before.Add(-time.Millisecond)) {
			t.Fatalf("job %d fields wrong: %+v", i, j)
		}
		ids[j.ID] = true
	}
}

func testRedeliver(t *testing.T, q Queue) {
	publish(t, q, "n1", 3)
	var mu sync.Mutex
	attempts := map[string]int{}
	consume(t, q, "n1", "c1", func(_ context.Context, j Job) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[j.VMID]++
		if j.VMID == "vm-001" && attempts[j.VMID] == 1 {
			return errors.New("transient")
		}
		return nil
	})
	testutil.Eventually(t, waitTimeout, "the failed job to come back", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return attempts["vm-001"] == 2
	})
	testutil.Eventually(t, waitTimeout, "depth 0", func() bool { d, _ := q.Depth(context.Background(), "n1"); return d == 0 })
	mu.Lock()
	defer mu.Unlock()
	if attempts["vm-000"] != 1 || attempts["vm-002"] != 1 {
		t.Fatalf("successful jobs redelivered: %v", attempts)
	}
}

func testDepth(t *testing.T, q Queue) {
	ctx := context.Background()
	if d, err := q.Depth(ctx, "n1"); err != nil || d != 0 {
		t.Fatalf("empty depth %d, %v", d, err)
	}
	publish(t, q, "n1", 3)
	if d, err := q.Depth(ctx, "n1"); err != nil || d != 3 {
		t.Fatalf("depth before consuming %d, %v; want 3", d, err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	consume(t, q, "n1", "c1", func(context.Context, Job) error {
		once.Do(func() { close(started); <-release })
		return nil
	})
	<-started
	if d, err := q.Depth(ctx, "n1"); err != nil || d != 3 {
		t.Fatalf("depth with one job in the handler %d, %v; want 3", d, err)
	}
	close(release)
	testutil.Eventually(t, waitTimeout, "depth 0 after acks", func() bool { d, _ := q.Depth(ctx, "n1"); return d == 0 })
}

func testShare(t *testing.T, q Queue) {
	const n = 300
	publish(t, q, "n1", n)
	var s seen
	slow := func(name string) Handler {
		return func(ctx context.Context, j Job) error {
			time.Sleep(time.Millisecond) // the subject: a handler that takes time, so both consumers get work
			s.add(name, j)
			return nil
		}
	}
	cancel1, done1 := consume(t, q, "n1", "c1", slow("c1"))
	cancel2, done2 := consume(t, q, "n1", "c2", slow("c2"))
	testutil.Eventually(t, waitTimeout, "all jobs", func() bool { return s.len() >= n })
	testutil.Eventually(t, waitTimeout, "depth 0", func() bool { d, _ := q.Depth(context.Background(), "n1"); return d == 0 })
	// Every job is acked, so none can come back; once both consumers have
	// returned no handler runs any more and the record is final.
	cancel1()
	cancel2()
	<-done1
	<-done2
	s.mu.Lock()
	defer s.mu.Unlock()
	count := map[string]int{}
	for _, j := range s.jobs {
		count[j.VMID]++
	}
	for vm, c := range count {
		if c != 1 {
			t.Errorf("%s handled %d times", vm, c)
		}
	}
	if len(count) != n {
		t.Fatalf("%d distinct jobs handled, want %d", len(count), n)
	}
	if len(s.by["c1"]) == 0 || len(s.by["c2"]) == 0 {
		t.Fatalf("work not shared: c1 %d, c2 %d", len(s.by["c1"]), len(s.by["c2"]))
	}
}

func testDeadConsumer(t *testing.T, q Queue) {
	publish(t, q, "n1", 1)
	took := make(chan struct{})
	cancelA, doneA := consume(t, q, "n1", "a", func(ctx context.Context, j Job) error {
		close(took)
		<-ctx.Done() // "dies" mid-job
		return ctx.Err()
	})
	<-took
	// Let the job sit well past MinIdle while a is alive: its keep-alive
	// must stop b from taking it.
	var s seen
	consume(t, q, "n1", "b", s.handler("b"))
	time.Sleep(2 * testOpts.MinIdle) // the subject: time passing beyond MinIdle must not hand the job over
	if s.len() != 0 {
		t.Fatal("job taken from a live consumer")
	}
	cancelA()
	if err := <-doneA; err != nil {
		t.Fatalf("Consume returned %v after its context ended", err)
	}
	start := time.Now()
	testutil.Eventually(t, waitTimeout, "b to reclaim the dead consumer's job", func() bool { return s.len() == 1 })
	t.Logf("reclaimed %s after the consumer died (min-idle %s)", time.Since(start).Round(time.Millisecond), testOpts.MinIdle)
	testutil.Eventually(t, waitTimeout, "depth 0", func() bool { d, _ := q.Depth(context.Background(), "n1"); return d == 0 })
}

func testClose(t *testing.T, q Queue) {
	running := make(chan struct{})
	var once sync.Once
	_, done := consume(t, q, "n1", "c1", func(context.Context, Job) error { once.Do(func() { close(running) }); return nil })
	publish(t, q, "n1", 1)
	select { // the consumer handled a job: it is in its loop when Close comes
	case <-running:
	case <-time.After(waitTimeout):
		t.Fatal("the consumer never handled a job")
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Consume after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Consume still running after Close")
	}
	if err := q.Publish(context.Background(), Job{VMID: "x", Node: "n1"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v, want ErrClosed", err)
	}
}
