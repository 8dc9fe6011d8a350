// Package ratelimit counts events per key in a fixed window, for login
// throttling and API limits. The in-process Memory limiter serves a single
// node; a Redis one (same interface) serves a cluster.
package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Limiter counts hits per key.
type Limiter interface {
	// Hit counts one event for key and reports whether the count is still
	// within limit for the current window, and when the window resets.
	Hit(ctx context.Context, key string, limit int, window time.Duration) (ok bool, retryAfter time.Duration, err error)
	// Reserve counts one event for key only if the count is still below
	// limit, in one atomic step: of N concurrent callers at most the
	// remaining budget get ok. A refused call counts nothing. Use it to
	// count an attempt before the work it limits, so the work never runs
	// more often than the limit however many requests arrive at once.
	Reserve(ctx context.Context, key string, limit int, window time.Duration) (ok bool, retryAfter time.Duration, err error)
	// Refund gives back one event counted by Hit or Reserve in the current
	// window (a reserved attempt that turned out not to count); never
	// below zero, and a no-op when the window has ended.
	Refund(ctx context.Context, key string) error
	// Peek reports whether key is still within limit without counting.
	Peek(ctx context.Context, key string, limit int, window time.Duration) (ok bool, retryAfter time.Duration, err error)
	// Reset forgets key (after a successful login, say).
	Reset(ctx context.Context, key string) error
}

type bucket struct {
	count int
	reset time.Time
}

// Memory is a Limiter held in this process.
type Memory struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	now     func() time.Time
	sweeps  int
}

// NewMemory returns an empty in-process limiter.
func NewMemory() *Memory {
	return &Memory{buckets: map[string]*bucket{}, now: time.Now}
}

func (m *Memory) get(key string, window time.Duration) *bucket {
	now := m.now()
	b := m.buckets[key]
	if b == nil || !now.Before(b.reset) {
		b = &bucket{reset: now.Add(window)}
		m.buckets[key] = b
	}
	// Sweep expired buckets now and then so the map does not grow forever.
	if m.sweeps++; m.sweeps%1024 == 0 {
		for k, v := range m.buckets {
			if !now.Before(v.reset) {
				delete(m.buckets, k)
			}
		}
	}
	return b
}

// Hit implements Limiter.
func (m *Memory) Hit(_ context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.get(key, window)
	b.count++
	return b.count <= limit, b.reset.Sub(m.now()), nil
}

// Reserve implements Limiter.
func (m *Memory) Reserve(_ context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.get(key, window)
	if b.count >= limit {
		return false, b.reset.Sub(m.now()), nil
	}
	b.count++
	return true, b.reset.Sub(m.now()), nil
}

// Refund implements Limiter.
func (m *Memory) Refund(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b := m.buckets[key]; b != nil && m.now().Before(b.reset) && b.count > 0 {
		b.count--
	}
	return nil
}

// Peek implements Limiter.
func (m *Memory) Peek(_ context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.get(key, window)
	return b.count < limit, b.reset.Sub(m.now()), nil
}

// Reset implements Limiter.
func (m *Memory) Reset(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.buckets, key)
	return nil
}
