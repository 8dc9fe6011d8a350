// Package lock holds per-VM locks with an expiry, so two nodes (or two
// goroutines) never run lifecycle operations on one VM at once, and a
// crashed holder's lock runs out by itself. In process (Memory) or on Redis
// (SET NX PX with a token, released by a compare-and-delete script).
package lock

import (
	"context"
	"errors"
	"time"
)

// ErrHeld is returned by TryAcquire when someone else holds the lock.
var ErrHeld = errors.New("lock held")

// ErrLost is returned by Extend and Release when the lease ran out and the
// key is free or held by someone else; the caller must stop what it guarded.
var ErrLost = errors.New("lock lost")

// Locker hands out locks by key.
type Locker interface {
	// TryAcquire takes key for ttl or returns ErrHeld at once.
	TryAcquire(ctx context.Context, key string, ttl time.Duration) (Lease, error)
	// Acquire waits (polling) until key is free or ctx ends.
	Acquire(ctx context.Context, key string, ttl time.Duration) (Lease, error)
}

// Lease is one held lock.
type Lease interface {
	// Extend pushes the expiry to ttl from now; an error means the lease was lost.
	Extend(ctx context.Context, ttl time.Duration) error
	Release(ctx context.Context) error
}
