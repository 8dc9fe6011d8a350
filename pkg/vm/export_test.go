package vm

import "time"

// LockWaiters is how many passes or provisionings hold or wait for a VM's
// lock, so a test can tell that a delete pass is queued behind a create.
func (r *Reconciler) LockWaiters(id string) int {
	r.vmLocks.mu.Lock()
	defer r.vmLocks.mu.Unlock()
	if e := r.vmLocks.m[id]; e != nil {
		return e.refs
	}
	return 0
}

// SetClock replaces the service's clock (expiry, activity) for a test.
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// SnapshotSize is what a snapshot counts against the disk quota.
var SnapshotSize = snapshotSize
