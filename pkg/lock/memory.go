package lock

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Memory is an in-process Locker.
type Memory struct {
	mu    sync.Mutex
	held  map[string]memHeld
	now   func() time.Time
	taken int
}

type memHeld struct {
	token   string
	expires time.Time
}

// NewMemory returns an empty in-process Locker.
func NewMemory() *Memory {
	return &Memory{held: map[string]memHeld{}, now: time.Now}
}

// TryAcquire implements Locker.
func (m *Memory) TryAcquire(_ context.Context, key string, ttl time.Duration) (Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if h, ok := m.held[key]; ok && now.Before(h.expires) {
		return nil, ErrHeld
	}
	// Drop expired entries now and then so abandoned keys do not pile up.
	if m.taken++; m.taken%1024 == 0 {
		for k, h := range m.held {
			if !now.Before(h.expires) {
				delete(m.held, k)
			}
		}
	}
	tok := newToken()
	m.held[key] = memHeld{token: tok, expires: now.Add(ttl)}
	return &memLease{m: m, key: key, token: tok}, nil
}

// Acquire implements Locker.
func (m *Memory) Acquire(ctx context.Context, key string, ttl time.Duration) (Lease, error) {
	return acquire(ctx, m, key, ttl)
}

type memLease struct {
	m     *Memory
	key   string
	token string
}

func (l *memLease) Extend(_ context.Context, ttl time.Duration) error {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	now := l.m.now()
	h, ok := l.m.held[l.key]
	if !ok || h.token != l.token || !now.Before(h.expires) {
		return fmt.Errorf("extend %s: %w", l.key, ErrLost)
	}
	h.expires = now.Add(ttl)
	l.m.held[l.key] = h
	return nil
}

func (l *memLease) Release(_ context.Context) error {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	h, ok := l.m.held[l.key]
	if !ok || h.token != l.token {
		return fmt.Errorf("release %s: %w", l.key, ErrLost)
	}
	delete(l.m.held, l.key)
	if !l.m.now().Before(h.expires) {
		return fmt.Errorf("release %s: %w", l.key, ErrLost)
	}
	return nil
}

// acquire polls TryAcquire with a growing, jittered pause: cheap for the
// short lifecycle locks this is for, and identical for both backends.
func acquire(ctx context.Context, l Locker, key string, ttl time.Duration) (Lease, error) {
	wait := 5 * time.Millisecond
	for {
		lease, err := l.TryAcquire(ctx, key, ttl)
		if err == nil {
			return lease, nil
		}
		if err != ErrHeld {
			return nil, err
		}
		t := time.NewTimer(wait/2 + rand.N(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("acquire %s: %w", key, ctx.Err())
		case <-t.C:
		}
		wait = min(wait*2, 200*time.Millisecond)
	}
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}
