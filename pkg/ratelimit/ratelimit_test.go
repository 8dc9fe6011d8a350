package ratelimit

import (
	"context"
	"testing"
	"time"
)

func TestMemoryWindow(t *testing.T) {
	now := time.Unix(1000, 0)
	m := NewMemory()
	m.now = func() time.Time { return now }
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		ok, _, _ := m.Hit(ctx, "k", 3, time.Minute)
		if !ok {
			t.Fatalf("hit %d refused", i)
		}
	}
	if ok, _, _ := m.Peek(ctx, "k", 3, time.Minute); ok {
		t.Fatal("peek allows a 4th")
	}
	ok, retry, _ := m.Hit(ctx, "k", 3, time.Minute)
	if ok || retry != time.Minute {
		t.Fatalf("4th hit ok=%v retry=%s", ok, retry)
	}
	if ok, _, _ := m.Peek(ctx, "other", 3, time.Minute); !ok {
		t.Fatal("keys are not independent")
	}
	now = now.Add(time.Minute)
	if ok, _, _ := m.Hit(ctx, "k", 3, time.Minute); !ok {
		t.Fatal("window did not reset")
	}
	_ = m.Reset(ctx, "k")
	if ok, _, _ := m.Peek(ctx, "k", 1, time.Minute); !ok {
		t.Fatal("reset did not forget")
	}
}
