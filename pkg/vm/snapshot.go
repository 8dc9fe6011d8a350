package vm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/dnslabel"
	"github.com/vmdhq/vmd/pkg/store"
)

// Snapshotter takes, restores and deletes VM snapshots and provisions
// clones on this node (the Reconciler, when its driver is a
// SnapshotDriver). Each call holds the VM's lock, so no reconcile pass
// (start, stop, delete) runs on it meanwhile.
type Snapshotter interface {
	CreateSnapshot(ctx context.Context, id, name string, memory bool) (store.Snapshot, error)
	RestoreSnapshot(ctx context.Context, id, name string) (store.VM, error)
	DeleteSnapshot(ctx context.Context, id, name string) error
	ProvisionClone(ctx context.Context, v store.VM, basePath string, src store.VM, snap string) error
}

// ErrNoSnapshots: this node's driver cannot snapshot.
var ErrNoSnapshots = errors.New("snapshots are not supported on this node")

// snapshotter is the Service's Snapshotter, or nil.
func (s *Service) snapshotter() Snapshotter {
	if sn, ok := s.prov.(Snapshotter); ok {
		return sn
	}
	return nil
}

// snapshotToAPI is a snapshot as the API shows it.
func snapshotToAPI(sn store.Snapshot) api.Snapshot {
	return api.Snapshot{Name: sn.Name, Consistency: sn.Consistency, Memory: sn.Memory, SizeGB: sn.SizeGB,
		CreatedAt: sn.CreatedAt}
}

// shownSnapshots drops pending records: a snapshot is listed once it exists.
func shownSnapshots(in []store.Snapshot) []api.Snapshot {
	out := []api.Snapshot{}
	for _, sn := range in {
		if !sn.Pending {
			out = append(out, snapshotToAPI(sn))
		}
	}
	return out
}

func checkSnapshotName(name string) error {
	if name == "" {
		return &ValidationError{"name", "is required"}
	}
	if !dnslabel.Valid(name) {
		return &ValidationError{"name", dnslabel.Rule}
	}
	return nil
}

// CreateSnapshot snapshots a caller's VM, stopped or running (409 in
// between), counting it against the owner's disk quota, then prunes the
// oldest snapshots beyond the VM's retention.
func (s *Service) CreateSnapshot(ctx context.Context, caller store.User, ref string, r api.CreateSnapshotRequest) (api.Snapshot, error) {
	if err := checkSnapshotName(r.Name); err != nil {
		return api.Snapshot{}, err
	}
	if r.Keep != nil && (*r.Keep < 0 || *r.Keep > 1000) {
		return api.Snapshot{}, &ValidationError{"keep", "must be between 0 and 1000"}
	}
	v, err := s.lookup(ctx, caller, ref)
	if err != nil {
		return api.Snapshot{}, err
	}
	sn := s.snapshotter()
	if sn == nil {
		return api.Snapshot{}, ErrNoSnapshots
	}
	if r.Keep != nil {
		if err := s.store.SetSnapshotKeep(ctx, v.ID, *r.Keep); err != nil {
			return api.Snapshot{}, fmt.Errorf("snapshot %s: %w", v.Name, err)
		}
	}
	made, err := sn.CreateSnapshot(ctx, v.ID, r.Name, r.Memory)
	if err != nil {
		return api.Snapshot{}, err
	}
	s.prune(ctx, v, sn)
	return snapshotToAPI(made), nil
}

// prune deletes a VM's oldest snapshots beyond its retention. A failure
// is left for the next create: the snapshot asked for exists.
func (s *Service) prune(ctx context.Context, v store.VM, sn Snapshotter) {
	keep, err := s.store.SnapshotKeep(ctx, v.ID)
	if err != nil || keep == 0 {
		return
	}
	all, err := s.store.ListSnapshots(ctx, v.ID)
	if err != nil {
		return
	}
	var made []store.Snapshot
	for _, x := range all {
		if !x.Pending {
			made = append(made, x)
		}
	}
	for i := 0; i < len(made)-keep; i++ {
		_ = sn.DeleteSnapshot(ctx, v.ID, made[i].Name)
	}
}

// ListSnapshots lists a caller's VM's snapshots, oldest first.
func (s *Service) ListSnapshots(ctx context.Context, caller store.User, ref string) ([]api.Snapshot, error) {
	v, err := s.lookup(ctx, caller, ref)
	if err != nil {
		return nil, err
	}
	all, err := s.store.ListSnapshots(ctx, v.ID)
	if err != nil {
		return nil, fmt.Errorf("snapshots of %s: %w", v.Name, err)
	}
	return shownSnapshots(all), nil
}

// RestoreSnapshot puts a caller's VM back to a snapshot. A running VM is
// stopped first and started again on the restored disk; a memory snapshot
// is loaded into the running guest, or the stopped VM starts at it.
func (s *Service) RestoreSnapshot(ctx context.Context, caller store.User, ref, name string) (api.VM, error) {
	if err := checkSnapshotName(name); err != nil {
		return api.VM{}, err
	}
	v, err := s.lookup(ctx, caller, ref)
	if err != nil {
		return api.VM{}, err
	}
	sn := s.snapshotter()
	if sn == nil {
		return api.VM{}, ErrNoSnapshots
	}
	nv, err := sn.RestoreSnapshot(ctx, v.ID, name)
	if err != nil {
		return api.VM{}, err
	}
	s.kickVM(v.ID)
	return nv.ToAPI(), nil
}

// DeleteSnapshot deletes a caller's VM's snapshot and frees its quota.
func (s *Service) DeleteSnapshot(ctx context.Context, caller store.User, ref, name string) error {
	if err := checkSnapshotName(name); err != nil {
		return err
	}
	v, err := s.lookup(ctx, caller, ref)
	if err != nil {
		return err
	}
	sn := s.snapshotter()
	if sn == nil {
		return ErrNoSnapshots
	}
	return sn.DeleteSnapshot(ctx, v.ID, name)
}

// SnapshotNotFoundError: the VM has no snapshot of that name. Its text is safe to show.
type SnapshotNotFoundError struct{ VM, Name string }

func (e *SnapshotNotFoundError) Error() string {
	return fmt.Sprintf("vm %s has no snapshot named %s", e.VM, e.Name)
}

// Unwrap lets errors.Is(err, ErrNotFound) find it.
func (e *SnapshotNotFoundError) Unwrap() error { return ErrNotFound }

// APICode makes it an api.CodedError.
func (e *SnapshotNotFoundError) APICode() string { return api.CodeNotFound }

// StateConflictError: the VM is not in a state the operation works in.
// Its text is safe to show.
type StateConflictError struct {
	VM, Op string
	State  api.State
}

func (e *StateConflictError) Error() string {
	msg := fmt.Sprintf("cannot %s vm %s while it is %s", e.Op, e.VM, e.State)
	if e.State != api.StateRunning && e.State != api.StateStopped {
		msg += "; wait until it is running or stopped"
	}
	return msg
}

// Unwrap lets errors.Is(err, ErrConflict) find it.
func (e *StateConflictError) Unwrap() error { return ErrConflict }

// APICode makes it an api.CodedError.
func (e *StateConflictError) APICode() string { return api.CodeConflict }

// --- clones ---

// cloneSource is the VM (and snapshot) a create copies its disk from.
type cloneSource struct {
	vm   store.VM
	snap string
}

// cloneFrom resolves a create's "from" (name or name@snap, the owner's
// own VM) and fills the request's template and sizes from the source.
func (s *Service) cloneFrom(ctx context.Context, ownerID string, r *api.CreateVMRequest) (*cloneSource, error) {
	name, snap, hasSnap := strings.Cut(r.From, "@")
	if !dnslabel.Valid(name) || (hasSnap && !dnslabel.Valid(snap)) {
		return nil, &ValidationError{"from", "must be a VM name, or name@snapshot; " + dnslabel.Rule}
	}
	src, err := s.store.GetVMByName(ctx, ownerID, name)
	if errors.Is(err, ErrNotFound) {
		return nil, &ValidationError{"from", fmt.Sprintf("no VM named %q", name)}
	}
	if err != nil {
		return nil, fmt.Errorf("clone source %s: %w", name, err)
	}
	if src.Desired == api.DesiredDeleted || src.State == api.StateProvisioning {
		return nil, &StateConflictError{VM: name, Op: "clone", State: src.State}
	}
	if r.Template != "" && r.Template != src.Template {
		return nil, &ValidationError{"template", fmt.Sprintf("a clone of %s has its template %q", name, src.Template)}
	}
	r.Template = src.Template
	if r.CPU == 0 {
		r.CPU = src.CPU
	}
	if r.MemoryMB == 0 {
		r.MemoryMB = src.MemoryMB
	}
	if r.DiskGB == 0 {
		r.DiskGB = src.DiskGB
	}
	if r.DiskGB < src.DiskGB {
		return nil, &ValidationError{"disk_gb", fmt.Sprintf("a clone of %s needs at least its %d GB", name, src.DiskGB)}
	}
	if hasSnap {
		sns, err := s.store.ListSnapshots(ctx, src.ID)
		if err != nil {
			return nil, fmt.Errorf("clone source %s: %w", name, err)
		}
		found := false
		for _, x := range sns {
			found = found || (x.Name == snap && !x.Pending)
		}
		if !found {
			return nil, &ValidationError{"from", fmt.Sprintf("vm %s has no snapshot named %s", name, snap)}
		}
	}
	if s.snapshotter() == nil && s.prov != nil {
		return nil, ErrNoSnapshots
	}
	return &cloneSource{vm: src, snap: snap}, nil
}

// --- reconciler side ---

var _ Snapshotter = (*Reconciler)(nil)

func (r *Reconciler) snapDriver() (SnapshotDriver, error) {
	if d, ok := r.cfg.Driver.(SnapshotDriver); ok {
		return d, nil
	}
	return nil, ErrNoSnapshots
}

// withVM runs f holding the VM's lock, and its cluster lock when there is
// a Locker (waiting a while for a pass to finish with it).
func (r *Reconciler) withVM(ctx context.Context, id string, f func() error) error {
	unlock := r.vmLocks.lock(id)
	defer unlock()
	if r.cfg.Locker == nil {
		return f()
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	lease, err := r.cfg.Locker.Acquire(lctx, "vm:"+id, r.cfg.LockTTL)
	cancel()
	if err != nil {
		return conflictf("vm %s is busy", id)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = lease.Release(rctx)
	}()
	return f()
}

// settled says whether v is at rest, running or stopped as asked, with the
// driver agreeing: the only states a snapshot is taken or restored in.
func (r *Reconciler) settled(v store.VM) (running bool, ok bool) {
	alive := r.cfg.Driver.Alive(v.ID)
	switch {
	case v.State == api.StateRunning && v.Desired == api.DesiredRunning && alive:
		return true, true
	case v.State == api.StateStopped && v.Desired == api.DesiredStopped && !alive:
		return false, true
	}
	return false, false
}

// withSettledVM runs f under the VM's lock on its record as it is now,
// when the VM is settled (settled); otherwise it is a StateConflictError
// saying op cannot be done in its state.
func (r *Reconciler) withSettledVM(ctx context.Context, id, op string, f func(v store.VM, running bool) error) error {
	return r.withVM(ctx, id, func() error {
		v, err := r.cfg.Store.GetVM(ctx, id)
		if err != nil {
			return err
		}
		running, ok := r.settled(v)
		if !ok {
			return &StateConflictError{VM: v.Name, Op: op, State: v.State}
		}
		return f(v, running)
	})
}

// snapshotSize is what a snapshot taken now counts against the disk
// quota: every cluster the overlay holds now (the snapshot keeps them all
// once the guest overwrites them), plus the memory it saves, in whole GB.
func snapshotSize(diskBytes int64, memoryMB int) int {
	const gb = 1 << 30
	total := diskBytes + int64(memoryMB)<<20
	return max(int((total+gb-1)/gb), 1)
}

// CreateSnapshot takes a snapshot of a settled VM. The record is admitted
// against the quota and written pending first, then the qcow2 snapshot is
// taken, then the record is marked made: a vmd killed in between leaves a
// pending record, which its successor removes with whatever was taken.
func (r *Reconciler) CreateSnapshot(ctx context.Context, id, name string, memory bool) (store.Snapshot, error) {
	d, err := r.snapDriver()
	if err != nil {
		return store.Snapshot{}, err
	}
	var made store.Snapshot
	err = r.withSettledVM(ctx, id, "snapshot", func(v store.VM, running bool) error {
		if memory && !running {
			return &StateConflictError{VM: v.Name, Op: "take a memory snapshot of", State: v.State}
		}
		spec := SpecOf(v)
		bytes, err := d.DiskBytes(spec)
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", v.Name, err)
		}
		mem := 0
		if memory {
			mem = v.MemoryMB
		}
		rec := store.Snapshot{VMID: v.ID, Name: name, SizeGB: snapshotSize(bytes, mem), Memory: memory,
			CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
		if err := r.cfg.Store.CreateSnapshot(ctx, rec); err != nil {
			var qe *store.QuotaError
			switch {
			case errors.As(err, &qe):
				return qe
			case errors.Is(err, ErrConflict):
				return conflictf("vm %s already has a snapshot named %s", v.Name, name)
			}
			return fmt.Errorf("snapshot %s: %w", v.Name, err)
		}
		rec.Consistency, err = r.takeSnapshot(ctx, d, spec, name, running, memory)
		if err == nil {
			err = r.cfg.Store.FinishSnapshot(ctx, v.ID, name, rec.Consistency)
		}
		if err != nil {
			// Undo with a fresh context: the request's may be what failed.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			r.dropSnapshot(cctx, d, spec, name)
			return fmt.Errorf("snapshot %s of %s: %w", name, v.Name, err)
		}
		made = rec
		return nil
	})
	return made, err
}

// takeSnapshot takes the qcow2 snapshot and says how consistent it is. A
// running guest's file systems are frozen around a disk-only snapshot when
// the driver can (guest agent); a guest that cannot be frozen is snapshotted
// as it is, crash-consistent.
func (r *Reconciler) takeSnapshot(ctx context.Context, d SnapshotDriver, spec GuestSpec, name string, running, memory bool) (string, error) {
	switch {
	case !running:
		return api.ConsistencyStopped, d.Snapshot(ctx, spec, name, false)
	case memory:
		return api.ConsistencyMemory, d.Snapshot(ctx, spec, name, true)
	}
	consistency := api.ConsistencyCrash
	if f, ok := r.cfg.Driver.(Freezer); ok {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, ferr := f.FsFreeze(fctx, spec.ID)
		cancel()
		// Thawed whatever happens, also after a failed freeze (it may have frozen some).
		defer func() {
			tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if _, err := f.FsThaw(tctx, spec.ID); err != nil && ferr == nil {
				r.log.Warn("snapshot: thaw", "vm", spec.ID, "err", err)
			}
		}()
		if ferr == nil {
			consistency = api.ConsistencyFrozen
		}
	}
	return consistency, d.Snapshot(ctx, spec, name, false)
}

// dropSnapshot removes a snapshot from the disk (if it is there) and its
// record (freeing its quota).
func (r *Reconciler) dropSnapshot(ctx context.Context, d SnapshotDriver, spec GuestSpec, name string) {
	if names, err := d.DiskSnapshots(ctx, spec); err == nil && contains(names, name) {
		if err := d.DeleteSnapshot(ctx, spec, name); err != nil {
			r.log.Warn("snapshot: remove from disk", "vm", spec.ID, "snapshot", name, "err", err)
			return // the record stays, so the quota still counts what the disk holds
		}
	}
	if err := r.cfg.Store.DeleteSnapshot(ctx, spec.ID, name); err != nil && !errors.Is(err, ErrNotFound) {
		r.log.Warn("snapshot: remove record", "vm", spec.ID, "snapshot", name, "err", err)
	}
}

func contains(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// findSnapshot is the VM's made snapshot of that name.
func (r *Reconciler) findSnapshot(ctx context.Context, v store.VM, name string) (store.Snapshot, error) {
	all, err := r.cfg.Store.ListSnapshots(ctx, v.ID)
	if err != nil {
		return store.Snapshot{}, fmt.Errorf("snapshots of %s: %w", v.Name, err)
	}
	for _, sn := range all {
		if sn.Name == name && !sn.Pending {
			return sn, nil
		}
	}
	return store.Snapshot{}, &SnapshotNotFoundError{VM: v.Name, Name: name}
}

// RestoreSnapshot puts a settled VM back to a snapshot. A disk snapshot
// of a running VM: the guest is stopped at once (its state is discarded
// anyway), the disk restored, and the VM left starting for the next pass.
// A memory snapshot: loaded live into a running guest, or a stopped VM is
// launched at it and runs (desired running).
func (r *Reconciler) RestoreSnapshot(ctx context.Context, id, name string) (store.VM, error) {
	d, err := r.snapDriver()
	if err != nil {
		return store.VM{}, err
	}
	var out store.VM
	err = r.withSettledVM(ctx, id, "restore", func(v store.VM, running bool) error {
		sn, err := r.findSnapshot(ctx, v, name)
		if err != nil {
			return err
		}
		spec := SpecOf(v)
		msg := "restored snapshot " + name
		switch {
		case sn.Memory && running:
			if err := d.RestoreSnapshot(ctx, spec, name); err != nil {
				return fmt.Errorf("restore %s of %s: %w", name, v.Name, err)
			}
			r.setState(ctx, &v, api.StateRunning, msg)
		case sn.Memory:
			if _, err := r.cfg.Store.SetDesired(ctx, v.ID, api.DesiredRunning); err != nil {
				return fmt.Errorf("restore %s of %s: %w", name, v.Name, err)
			}
			r.setState(ctx, &v, api.StateStarting, "restoring snapshot "+name)
			if err := d.LaunchSnapshot(ctx, spec, name); err != nil {
				r.setState(ctx, &v, api.StateError, "restore of snapshot "+name+" failed: "+err.Error())
				return fmt.Errorf("restore %s of %s: %w", name, v.Name, err)
			}
			r.markRunning(ctx, &v)
		default:
			if running {
				// Starting, not stopped: the guest's end is ours, not a crash,
				// and the next pass launches it on the restored disk.
				r.setState(ctx, &v, api.StateStarting, "restoring snapshot "+name)
				if err := r.cfg.Driver.Stop(ctx, v.ID, closedChan); err != nil {
					r.setState(ctx, &v, api.StateError, "restore of snapshot "+name+" failed: "+err.Error())
					return fmt.Errorf("restore %s of %s: %w", name, v.Name, err)
				}
				r.takeEvents(v.ID)
			}
			if err := d.RestoreSnapshot(ctx, spec, name); err != nil {
				if running {
					r.setState(ctx, &v, api.StateStarting, "restore of snapshot "+name+" failed, starting as it was: "+err.Error())
				}
				return fmt.Errorf("restore %s of %s: %w", name, v.Name, err)
			}
			st := api.StateStopped
			if running {
				st = api.StateStarting
			}
			r.setState(ctx, &v, st, msg)
		}
		out = v
		return nil
	})
	return out, err
}

// closedChan is a force channel that is already closed: stop at once.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// DeleteSnapshot deletes a VM's snapshot, running or stopped (not while it
// changes state), from its disk first and then its record.
func (r *Reconciler) DeleteSnapshot(ctx context.Context, id, name string) error {
	d, err := r.snapDriver()
	if err != nil {
		return err
	}
	return r.withSettledVM(ctx, id, "delete a snapshot of", func(v store.VM, _ bool) error {
		if _, err := r.findSnapshot(ctx, v, name); err != nil {
			return err
		}
		spec := SpecOf(v)
		names, err := d.DiskSnapshots(ctx, spec)
		if err != nil {
			return fmt.Errorf("delete snapshot %s of %s: %w", name, v.Name, err)
		}
		if contains(names, name) {
			if err := d.DeleteSnapshot(ctx, spec, name); err != nil {
				return fmt.Errorf("delete snapshot %s of %s: %w", name, v.Name, err)
			}
		}
		if err := r.cfg.Store.DeleteSnapshot(ctx, v.ID, name); err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("delete snapshot %s of %s: %w", name, v.Name, err)
		}
		return nil
	})
}

// cloneTag names the temporary snapshot a clone of a running VM is made from.
func cloneTag(id string) string { return "vmd-clone-" + strings.ToLower(id) }

// ProvisionClone makes a new VM's files with its disk copied from src (or
// src's snapshot snap). The copy runs under src's lock: a stopped src
// stays stopped meanwhile; a running one gets a temporary disk snapshot
// to copy from (crash-consistent), removed after.
func (r *Reconciler) ProvisionClone(ctx context.Context, v store.VM, basePath string, src store.VM, snap string) error {
	d, err := r.snapDriver()
	if err != nil {
		return err
	}
	return r.provisionWith(ctx, v, func() error {
		return r.withVM(ctx, src.ID, func() error {
			cur, err := r.cfg.Store.GetVM(ctx, src.ID)
			if err != nil {
				return conflictf("clone source %s is gone", src.Name)
			}
			running, ok := r.settled(cur)
			if snap != "" {
				if _, err := r.findSnapshot(ctx, cur, snap); err != nil {
					return err
				}
				return d.ProvisionClone(ctx, SpecOf(v), basePath, SpecOf(cur), snap)
			}
			if !ok {
				return &StateConflictError{VM: cur.Name, Op: "clone", State: cur.State}
			}
			if !running {
				return d.ProvisionClone(ctx, SpecOf(v), basePath, SpecOf(cur), "")
			}
			tag := cloneTag(v.ID)
			if err := d.Snapshot(ctx, SpecOf(cur), tag, false); err != nil {
				return fmt.Errorf("clone %s: %w", cur.Name, err)
			}
			err = d.ProvisionClone(ctx, SpecOf(v), basePath, SpecOf(cur), tag)
			if derr := d.DeleteSnapshot(context.WithoutCancel(ctx), SpecOf(cur), tag); derr != nil {
				r.log.Warn("clone: remove temporary snapshot", "vm", cur.ID, "snapshot", tag, "err", derr)
			}
			return err
		})
	})
}

// reconcileSnapshots makes a VM's records agree with its disk, on the
// first pass after a vmd start (under the VM's lock, so no snapshot call
// of this process is in flight): a pending record is an operation an
// earlier vmd never finished, so it goes, with the qcow2 snapshot if that
// was taken; a record without a qcow2 snapshot goes; a qcow2 snapshot
// without a record (an interrupted clone's, a delete cut short) is removed.
func (r *Reconciler) reconcileSnapshots(ctx context.Context, v store.VM) {
	d, ok := r.cfg.Driver.(SnapshotDriver)
	if !ok || v.State == api.StateProvisioning || v.Desired == api.DesiredDeleted {
		return
	}
	recs, err := r.cfg.Store.ListSnapshots(ctx, v.ID)
	if err != nil {
		r.log.Warn("reconcile snapshots: list records", "vm", v.ID, "err", err)
		return
	}
	spec := SpecOf(v)
	names, err := d.DiskSnapshots(ctx, spec)
	if err != nil {
		r.log.Warn("reconcile snapshots: list disk snapshots", "vm", v.ID, "err", err)
		return
	}
	known := map[string]bool{}
	for _, rec := range recs {
		known[rec.Name] = true
		switch {
		case rec.Pending:
			r.log.Warn("reconcile snapshots: removing a snapshot an earlier vmd did not finish", "vm", v.ID, "snapshot", rec.Name)
			r.dropSnapshot(ctx, d, spec, rec.Name)
		case !contains(names, rec.Name):
			r.log.Warn("reconcile snapshots: dropping a record whose disk snapshot is gone", "vm", v.ID, "snapshot", rec.Name)
			if err := r.cfg.Store.DeleteSnapshot(ctx, v.ID, rec.Name); err != nil && !errors.Is(err, ErrNotFound) {
				r.log.Warn("reconcile snapshots: remove record", "vm", v.ID, "snapshot", rec.Name, "err", err)
			}
		}
	}
	for _, n := range names {
		if !known[n] {
			r.log.Warn("reconcile snapshots: removing a disk snapshot without a record", "vm", v.ID, "snapshot", n)
			if err := d.DeleteSnapshot(ctx, spec, n); err != nil {
				r.log.Warn("reconcile snapshots: remove disk snapshot", "vm", v.ID, "snapshot", n, "err", err)
			}
		}
	}
}
