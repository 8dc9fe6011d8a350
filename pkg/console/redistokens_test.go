package console_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/console"
	"github.com/vmdhq/vmd/pkg/redisx/redistest"
)

func TestTokenStore(t *testing.T) {
	backends := []struct {
		name string
		open func(t *testing.T) console.TokenStore
	}{
		{"Memory", func(*testing.T) console.TokenStore { return console.NewMemoryTokens(nil) }},
		{"Redis", func(t *testing.T) console.TokenStore {
			rdb, prefix := redistest.Client(t)
			return console.NewRedisTokens(rdb, prefix)
		}},
	}
	tests := []struct {
		name string
		run  func(t *testing.T, s console.TokenStore)
	}{
		{"RoundTrip", testTokenRoundTrip},
		{"SingleUseUnderRace", testTokenSingleUse},
		{"Expiry", testTokenExpiry},
	}
	for _, b := range backends {
		for _, tc := range tests {
			t.Run(b.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				tc.run(t, b.open(t))
			})
		}
	}
}

func grant(ttl time.Duration) console.Grant {
	now := time.Now().Truncate(time.Millisecond)
	return console.Grant{UserID: "u1", VMID: "vm1", IssuedAt: now, ExpiresAt: now.Add(ttl)}
}

func testTokenRoundTrip(t *testing.T, s console.TokenStore) {
	ctx := context.Background()
	g := grant(time.Minute)
	if err := s.Put(ctx, "h1", g); err != nil {
		t.Fatal(err)
	}
	got, err := s.Take(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if got.UserID != g.UserID || got.VMID != g.VMID || !got.IssuedAt.Equal(g.IssuedAt) || !got.ExpiresAt.Equal(g.ExpiresAt) {
		t.Fatalf("got %+v, want %+v", got, g)
	}
	if _, err := s.Take(ctx, "h1"); !errors.Is(err, console.ErrTokenInvalid) {
		t.Fatalf("second take: %v", err)
	}
	if _, err := s.Take(ctx, "never"); !errors.Is(err, console.ErrTokenInvalid) {
		t.Fatalf("unknown hash: %v", err)
	}
}

func testTokenSingleUse(t *testing.T, s console.TokenStore) {
	ctx := context.Background()
	if err := s.Put(ctx, "h", grant(time.Minute)); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	results := make(chan error, n)
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.Take(ctx, "h")
			results <- err
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	won := 0
	for err := range results {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, console.ErrTokenInvalid):
			t.Fatal(err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent takes won, want exactly 1", won, n)
	}
}

// testTokenExpiry: an expired grant is never usable. Redis drops it; Memory
// may hand it back, and the console rejects it by ExpiresAt (ws.go).
func testTokenExpiry(t *testing.T, s console.TokenStore) {
	ctx := context.Background()
	if err := s.Put(ctx, "h", grant(150*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond) // the subject: the grant's TTL runs out
	g, err := s.Take(ctx, "h")
	if err == nil && time.Now().Before(g.ExpiresAt) {
		t.Fatalf("expired grant usable: %+v", g)
	}
	if err != nil && !errors.Is(err, console.ErrTokenInvalid) {
		t.Fatal(err)
	}
	if _, ok := s.(*console.RedisTokens); ok && err == nil {
		t.Fatal("redis kept a grant past its expiry")
	}
}
