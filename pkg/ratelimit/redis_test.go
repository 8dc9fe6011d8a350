package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/redisx/redistest"
)

// TestLimiter holds both backends to the expectations of TestMemoryWindow,
// with a real clock instead of an injected one.
func TestLimiter(t *testing.T) {
	backends := []struct {
		name string
		open func(t *testing.T) Limiter
	}{
		{"Memory", func(*testing.T) Limiter { return NewMemory() }},
		{"Redis", func(t *testing.T) Limiter {
			rdb, prefix := redistest.Client(t)
			return NewRedis(rdb, prefix)
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			t.Run("window", func(t *testing.T) { testWindow(t, b.open(t)) })
			t.Run("reserve", func(t *testing.T) { testReserve(t, b.open(t)) })
		})
	}
}

// testReserve: of many concurrent reservations exactly the limit's worth
// succeed, refused ones count nothing, and a refund frees one slot but never
// drives a count below zero.
func testReserve(t *testing.T, l Limiter) {
	ctx := context.Background()
	const limit, callers = 5, 60
	var wg sync.WaitGroup
	var granted atomic.Int32
	errs := make(chan error, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, retry, err := l.Reserve(ctx, "k", limit, time.Minute)
			if err != nil {
				errs <- err
				return
			}
			if retry <= 0 || retry > time.Minute {
				errs <- fmt.Errorf("retry %s outside (0, 1m]", retry)
			}
			if ok {
				granted.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := granted.Load(); n != limit {
		t.Fatalf("%d of %d concurrent reservations granted, want %d", n, callers, limit)
	}
	// Refused reservations counted nothing: one refund frees exactly one slot.
	if err := l.Refund(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := l.Reserve(ctx, "k", limit, time.Minute); !ok || err != nil {
		t.Fatalf("reserve after a refund refused: %v", err)
	}
	if ok, _, _ := l.Reserve(ctx, "k", limit, time.Minute); ok {
		t.Fatal("reserve beyond the limit granted")
	}
	// Refunding a key that has no window neither creates one nor goes negative.
	for range 3 {
		if err := l.Refund(ctx, "fresh"); err != nil {
			t.Fatal(err)
		}
	}
	if ok, _, _ := l.Reserve(ctx, "fresh", 1, time.Minute); !ok {
		t.Fatal("first reservation of a fresh key refused")
	}
	if ok, _, _ := l.Reserve(ctx, "fresh", 1, time.Minute); ok {
		t.Fatal("refunds before the window drove the count below zero")
	}
	// Reserve and Hit share the count.
	if ok, _, _ := l.Hit(ctx, "shared", 2, time.Minute); !ok {
		t.Fatal("hit refused")
	}
	if ok, _, _ := l.Reserve(ctx, "shared", 2, time.Minute); !ok {
		t.Fatal("second event refused")
	}
	if ok, _, _ := l.Peek(ctx, "shared", 2, time.Minute); ok {
		t.Fatal("peek ignores a reservation")
	}
}

func testWindow(t *testing.T, l Limiter) {
	ctx := context.Background()
	const window = 400 * time.Millisecond
	var start time.Time // when the first hit had been counted: the window began before
	for i := 1; i <= 3; i++ {
		ok, retry, err := l.Hit(ctx, "k", 3, window)
		if err != nil || !ok {
			t.Fatalf("hit %d refused: %v", i, err)
		}
		if retry <= 0 || retry > window {
			t.Fatalf("hit %d retry %s outside (0, %s]", i, retry, window)
		}
		if i == 1 {
			start = time.Now()
		}
	}
	if ok, _, err := l.Peek(ctx, "k", 3, window); ok || err != nil {
		t.Fatalf("peek allows a 4th (err %v)", err)
	}
	// Let the window age, so a hit that stretched it would show (the
	// subject is time passing; there is nothing to wait for instead).
	time.Sleep(time.Until(start.Add(50 * time.Millisecond)))
	// Measured before the 4th hit is sent: at most the window's true age
	// when the 4th hit is counted (a busy Redis or client only makes it older).
	elapsed := time.Since(start)
	ok, retry, err := l.Hit(ctx, "k", 3, window)
	if err != nil || ok {
		t.Fatalf("4th hit ok=%v err=%v", ok, err)
	}
	// The window started at the first hit and is not stretched by later ones.
	if retry > window-elapsed+time.Millisecond || retry <= 0 {
		t.Fatalf("4th hit retry %s, want at most %s", retry, window-elapsed)
	}
	if ok, retry, err := l.Peek(ctx, "other", 3, window); !ok || err != nil || retry > window || retry < window-50*time.Millisecond {
		t.Fatalf("keys are not independent: ok=%v retry=%s err=%v", ok, retry, err)
	}
	time.Sleep(time.Until(start.Add(window + 20*time.Millisecond))) // the subject: the window runs out
	if ok, _, err := l.Hit(ctx, "k", 3, window); !ok || err != nil {
		t.Fatalf("window did not reset: %v", err)
	}
	if ok, _, _ := l.Peek(ctx, "k", 1, window); ok {
		t.Fatal("peek ignores the new window's hit")
	}
	if err := l.Reset(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := l.Peek(ctx, "k", 1, window); !ok {
		t.Fatal("reset did not forget")
	}
}
