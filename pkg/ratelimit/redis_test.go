package ratelimit

import (
	"context"
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
			testWindow(t, b.open(t))
		})
	}
}

func testWindow(t *testing.T, l Limiter) {
	ctx := context.Background()
	const window = 400 * time.Millisecond
	start := time.Now()
	for i := 1; i <= 3; i++ {
		ok, retry, err := l.Hit(ctx, "k", 3, window)
		if err != nil || !ok {
			t.Fatalf("hit %d refused: %v", i, err)
		}
		if retry <= 0 || retry > window {
			t.Fatalf("hit %d retry %s outside (0, %s]", i, retry, window)
		}
	}
	if ok, _, err := l.Peek(ctx, "k", 3, window); ok || err != nil {
		t.Fatalf("peek allows a 4th (err %v)", err)
	}
	ok, retry, err := l.Hit(ctx, "k", 3, window)
	if err != nil || ok {
		t.Fatalf("4th hit ok=%v err=%v", ok, err)
	}
	// The window started at the first hit and is not stretched by later ones.
	if elapsed := time.Since(start); retry > window-elapsed+5*time.Millisecond || retry <= 0 {
		t.Fatalf("4th hit retry %s, want about %s", retry, window-elapsed)
	}
	if ok, retry, err := l.Peek(ctx, "other", 3, window); !ok || err != nil || retry > window || retry < window-50*time.Millisecond {
		t.Fatalf("keys are not independent: ok=%v retry=%s err=%v", ok, retry, err)
	}
	time.Sleep(time.Until(start.Add(window + 20*time.Millisecond)))
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
