package lock

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/redisx/redistest"
)

// lockers runs every test against both backends.
var lockers = []struct {
	name string
	open func(t *testing.T) Locker
}{
	{"Memory", func(*testing.T) Locker { return NewMemory() }},
	{"Redis", func(t *testing.T) Locker {
		rdb, prefix := redistest.Client(t)
		return NewRedis(rdb, prefix)
	}},
}

func TestLocker(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, l Locker)
	}{
		{"MutualExclusion", testMutualExclusion},
		{"TryAcquireHeld", testTryAcquireHeld},
		{"ExpiryFreesDeadHolder", testExpiry},
		{"StaleLeaseCannotTouchNewHolder", testStaleLease},
		{"AcquireHonoursContext", testAcquireCtx},
	}
	for _, b := range lockers {
		for _, tc := range tests {
			t.Run(b.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				tc.run(t, b.open(t))
			})
		}
	}
}

func testMutualExclusion(t *testing.T, l Locker) {
	ctx := context.Background()
	const workers, rounds = 8, 25
	counter := 0 // deliberately unsynchronised: only the lock protects it
	var inside sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				lease, err := l.Acquire(ctx, "vm/x", 5*time.Second)
				if err != nil {
					errs <- err
					return
				}
				// TryLock fails if two holders overlap, which -race alone may miss.
				if !inside.TryLock() {
					errs <- errors.New("two holders at once")
					return
				}
				c := counter
				time.Sleep(50 * time.Microsecond) // widen the read-modify-write, so overlapping holders would lose counts
				counter = c + 1
				inside.Unlock()
				if err := lease.Release(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if counter != workers*rounds {
		t.Fatalf("counter = %d, want %d (lost updates)", counter, workers*rounds)
	}
}

func testTryAcquireHeld(t *testing.T, l Locker) {
	ctx := context.Background()
	a, err := l.TryAcquire(ctx, "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.TryAcquire(ctx, "k", time.Minute); !errors.Is(err, ErrHeld) {
		t.Fatalf("second TryAcquire: %v, want ErrHeld", err)
	}
	if _, err := l.TryAcquire(ctx, "other", time.Minute); err != nil {
		t.Fatalf("keys are not independent: %v", err)
	}
	if err := a.Extend(ctx, time.Minute); err != nil {
		t.Fatalf("extend own lease: %v", err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TryAcquire(ctx, "k", time.Minute); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func testExpiry(t *testing.T, l Locker) {
	ctx := context.Background()
	if _, err := l.TryAcquire(ctx, "k", 150*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// The holder "dies": it never releases.
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	start := time.Now()
	b, err := l.Acquire(actx, "k", time.Minute)
	if err != nil {
		t.Fatalf("dead holder's lock never expired: %v", err)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("acquired after %s, before the ttl ran out", waited)
	}
	_ = b.Release(ctx)
}

func testStaleLease(t *testing.T, l Locker) {
	ctx := context.Background()
	old, err := l.TryAcquire(ctx, "k", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// The subject: the lease's TTL runs out unrenewed, and the lock is free
	// again within a bound.
	var cur Lease
	if !testutil.WaitFor(5*time.Second, func() bool { cur, err = l.TryAcquire(ctx, "k", time.Minute); return err == nil }) {
		t.Fatalf("expired lock not free: %v", err)
	}
	if err := old.Release(ctx); !errors.Is(err, ErrLost) {
		t.Fatalf("stale release: %v, want ErrLost", err)
	}
	if err := old.Extend(ctx, time.Minute); !errors.Is(err, ErrLost) {
		t.Fatalf("stale extend: %v, want ErrLost", err)
	}
	if _, err := l.TryAcquire(ctx, "k", time.Minute); !errors.Is(err, ErrHeld) {
		t.Fatalf("stale release freed the new holder's lock: %v", err)
	}
	if err := cur.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func testAcquireCtx(t *testing.T, l Locker) {
	ctx := context.Background()
	if _, err := l.TryAcquire(ctx, "k", time.Minute); err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := l.Acquire(actx, "k", time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire on a held lock: %v, want deadline exceeded", err)
	}
}
