package queue

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"
)

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("queue closed")

// Options tune delivery; zero values take the defaults.
type Options struct {
	// MinIdle is how long a delivered job may stay unacknowledged before any
	// consumer of the node may take it over (XAUTOCLAIM min-idle). It is
	// also the retry delay after a handler error. While a handler runs its
	// consumer keeps the job fresh, so only dead consumers lose jobs to
	// others. Default 30s.
	MinIdle time.Duration
	// ClaimEvery is how often a consumer looks for such jobs. Default MinIdle/2.
	ClaimEvery time.Duration
	// Block is the longest one XREADGROUP waits (Redis); it bounds how long
	// Consume takes to notice its context ended. Default 2s.
	Block time.Duration
	// MaxLen caps each node's stream (XADD MAXLEN ~). Acknowledged entries
	// are trimmed first in practice; unacknowledged ones are lost only if a
	// node falls this far behind. Default 10000.
	MaxLen int64
	// Log receives handler errors and connection trouble. Default: discard.
	Log *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.MinIdle <= 0 {
		o.MinIdle = 30 * time.Second
	}
	if o.ClaimEvery <= 0 {
		o.ClaimEvery = o.MinIdle / 2
	}
	if o.Block <= 0 {
		o.Block = 2 * time.Second
	}
	if o.MaxLen <= 0 {
		o.MaxLen = 10000
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// backoff waits 100ms, 200ms, … up to 5s, jittered, between retries after a
// connection error.
type backoff struct{ next time.Duration }

func (b *backoff) reset() { b.next = 0 }

// wait sleeps the next step; false when ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	b.next = min(max(2*b.next, 100*time.Millisecond), 5*time.Second)
	t := time.NewTimer(b.next/2 + rand.N(b.next/2))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
