package vm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/lock"
	"github.com/vmdhq/vmd/pkg/store"
)

// RestartPolicy says what happens to a guest that dies without being asked to.
type RestartPolicy string

// Restart policies.
const (
	// RestartAlways launches it again, up to MaxRestarts times per RestartWindow, then marks it error.
	RestartAlways RestartPolicy = "always"
	// RestartNever marks it error with the reason.
	RestartNever RestartPolicy = "never"
)

// ReconcilerConfig sets up a Reconciler. Zero values take the defaults noted.
type ReconcilerConfig struct {
	Store  store.Store
	Driver Driver
	// Node is this node's name; only VMs recorded on it are reconciled.
	Node string
	// Interval between full passes over this node's VMs (default 5 s); kicks act at once.
	Interval time.Duration
	// RestartPolicy for guests that die unexpectedly (default RestartAlways).
	RestartPolicy RestartPolicy
	// MaxRestarts within RestartWindow before giving up (defaults 5 and 10 min).
	MaxRestarts   int
	RestartWindow time.Duration
	Logger        *slog.Logger
	// Locker, if set, holds "vm:<id>" for each pass (Redis in a cluster);
	// LockTTL bounds a crashed holder's lock (default 10 min, above the longest stop).
	Locker  lock.Locker
	LockTTL time.Duration
	// StateChanged, if set, hears every state the reconciler records (the
	// console closes its sessions when a VM leaves running).
	StateChanged func(id string, s api.State)
	// Observer, if set, hears timings and launch outcomes (vmd's metrics).
	Observer Observer
	// ReadyLine, if set, names a template's ready line ("" for the default).
	ReadyLine func(template string) string
	// Layout, if set, is where this node keeps VM files: on start, Run
	// removes the VM directories no record owns (a crash between a
	// record's deletion and its files', or files of another store).
	Layout Layout
	// Now, if set, is the clock that expiry and idle stop are decided by (tests).
	Now func() time.Time
}

// Observer hears what the reconciler does, for metrics; pkg/metrics.VM is
// one, so this package needs no Prometheus import.
type Observer interface {
	// ObserveProvision is told how long making a VM's files took.
	ObserveProvision(d time.Duration, err error)
	// ObserveBoot is told whether a launch reached running (false: the
	// launch failed or the guest went to error first).
	ObserveBoot(ok bool)
	// ObserveReconcile is told how long one pass over one VM took.
	ObserveReconcile(d time.Duration)
}

type nopObserver struct{}

func (nopObserver) ObserveProvision(time.Duration, error) {}
func (nopObserver) ObserveBoot(bool)                      {}
func (nopObserver) ObserveReconcile(time.Duration)        {}

// Reconciler makes each VM's actual state follow its desired state, one
// operation at a time per VM. It is the Kicker and Provisioner of a Service.
type Reconciler struct {
	cfg   ReconcilerConfig
	log   *slog.Logger
	kicks chan string

	mu       sync.Mutex
	workers  map[string]chan struct{} // per VM: its worker's kick, capacity 1
	force    map[string]chan struct{} // per VM: closed to cut a graceful stop short
	events   map[string][]GuestEvent  // per VM: guest events not yet looked at
	restarts map[string][]time.Time   // per VM: recent unplanned restarts
	closed   map[string]bool          // per VM: whether force has been closed
	launched map[string]bool          // per VM: launched, outcome not yet observed
	// hostKeysRead: per VM, the guest's SSH host keys were read this launch.
	hostKeysRead map[string]bool
	wg           sync.WaitGroup

	// started is when this reconciler was made: a VM still provisioning
	// but last written before it was left half-made by an earlier vmd.
	started time.Time
	vmLocks keyedMutex // per VM: held by each pass and by Provision
}

var (
	_ Kicker      = (*Reconciler)(nil)
	_ Provisioner = (*Reconciler)(nil)
)

// NewReconciler returns a Reconciler; call Run to start it.
func NewReconciler(c ReconcilerConfig) *Reconciler {
	if c.Interval <= 0 {
		c.Interval = 5 * time.Second
	}
	if c.RestartPolicy == "" {
		c.RestartPolicy = RestartAlways
	}
	if c.MaxRestarts <= 0 {
		c.MaxRestarts = 5
	}
	if c.RestartWindow <= 0 {
		c.RestartWindow = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.LockTTL <= 0 {
		c.LockTTL = 10 * time.Minute
	}
	return &Reconciler{cfg: c, log: c.Logger, kicks: make(chan string, 1024),
		workers: map[string]chan struct{}{}, force: map[string]chan struct{}{},
		events: map[string][]GuestEvent{}, restarts: map[string][]time.Time{}, closed: map[string]bool{},
		launched: map[string]bool{}, hostKeysRead: map[string]bool{}, started: time.Now().Truncate(time.Microsecond)}
}

// ParseRestartPolicy checks a --restart-policy value.
func ParseRestartPolicy(s string) (RestartPolicy, error) {
	switch p := RestartPolicy(s); p {
	case RestartAlways, RestartNever:
		return p, nil
	}
	return "", fmt.Errorf("restart policy %q: want always or never", s)
}

// Provision makes a VM's files through the driver. It holds the VM's
// lock, so no reconcile pass (a delete) runs meanwhile, and it makes
// nothing for a VM whose record is gone or being deleted: a delete during
// provisioning never leaves files behind.
func (r *Reconciler) Provision(ctx context.Context, v store.VM, basePath string) error {
	return r.provisionWith(ctx, v, func() error { return r.cfg.Driver.Provision(ctx, SpecOf(v), basePath) })
}

// provisionWith is Provision with makeFiles making the files.
func (r *Reconciler) provisionWith(ctx context.Context, v store.VM, makeFiles func() error) error {
	unlock := r.vmLocks.lock(v.ID)
	defer unlock()
	cur, err := r.cfg.Store.GetVM(ctx, v.ID)
	if err != nil {
		return err
	}
	if cur.Desired == api.DesiredDeleted {
		return fmt.Errorf("deleted meanwhile: %w", store.ErrNotFound)
	}
	start := time.Now()
	err = makeFiles()
	r.cfg.Observer.ObserveProvision(time.Since(start), err)
	if err != nil {
		return err
	}
	// A delete that came meanwhile wins: the create is undone and says so.
	if cur, err = r.cfg.Store.GetVM(ctx, v.ID); err != nil || cur.Desired == api.DesiredDeleted {
		return errors.Join(fmt.Errorf("deleted meanwhile: %w", store.ErrNotFound),
			r.cfg.Driver.Destroy(context.WithoutCancel(ctx), SpecOf(v)))
	}
	return nil
}

// Destroy stops a VM's process and removes its files through the driver,
// holding the VM's lock: the driver never does two things at once for a VM.
func (r *Reconciler) Destroy(ctx context.Context, v store.VM) error {
	unlock := r.vmLocks.lock(v.ID)
	defer unlock()
	return r.cfg.Driver.Destroy(ctx, SpecOf(v))
}

// Kick asks for a VM to be reconciled soon. It never blocks.
func (r *Reconciler) Kick(id string) {
	select {
	case r.kicks <- id:
	default: // full: the next timed pass covers it
	}
}

// ForceStop makes a stop of the VM, running or about to run, skip the
// guest's clean shutdown.
func (r *Reconciler) ForceStop(id string) {
	r.mu.Lock()
	ch, ok := r.force[id]
	if !ok {
		ch = make(chan struct{})
		r.force[id] = ch
	}
	if !r.closed[id] {
		close(ch)
		r.closed[id] = true
	}
	r.mu.Unlock()
	r.Kick(id)
}

func (r *Reconciler) forceChan(id string) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch, ok := r.force[id]
	if !ok {
		ch = make(chan struct{})
		r.force[id] = ch
	}
	return ch
}

func (r *Reconciler) clearForce(id string) {
	r.mu.Lock()
	delete(r.force, id)
	delete(r.closed, id)
	r.mu.Unlock()
}

func (r *Reconciler) onEvent(e GuestEvent) {
	r.mu.Lock()
	if len(r.events[e.ID]) < 64 {
		r.events[e.ID] = append(r.events[e.ID], e)
	}
	r.mu.Unlock()
	r.Kick(e.ID)
}

func (r *Reconciler) takeEvents(id string) []GuestEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs := r.events[id]
	delete(r.events, id)
	return evs
}

// Run reconciles until ctx ends, on kicks and every Interval. Guests keep
// running after it returns; a later Run (even in another process) adopts them.
func (r *Reconciler) Run(ctx context.Context) error {
	r.cfg.Driver.Subscribe(r.onEvent)
	defer r.cfg.Driver.Subscribe(nil)
	r.collectGarbage(ctx)
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	r.sweep(ctx)
	for {
		select {
		case <-ctx.Done():
			r.wg.Wait()
			return nil
		case id := <-r.kicks:
			r.dispatch(ctx, id)
		case <-t.C:
			r.sweep(ctx)
		}
	}
}

// sweep dispatches every VM of this node. The first dispatch of a VM
// starts its worker, which adopts a guest left running, so each adoption
// runs on its own and a hung QEMU holds up only its own VM.
func (r *Reconciler) sweep(ctx context.Context) {
	vms, err := r.cfg.Store.ListVMs(ctx, "")
	if err != nil {
		r.log.Error("reconcile: list vms", "err", err)
		return
	}
	for _, v := range vms {
		if v.Node == r.cfg.Node {
			r.dispatch(ctx, v.ID)
		}
	}
}

func (r *Reconciler) dispatch(ctx context.Context, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if kick, ok := r.workers[id]; ok {
		select {
		case kick <- struct{}{}:
		default: // a pass is already due
		}
		return
	}
	kick := make(chan struct{}, 1)
	r.workers[id] = kick
	r.wg.Add(1)
	go r.work(ctx, id, kick)
}

// lockedPass runs one reconcile pass under the VM's lock, so two vmd
// processes that both believe they own a VM (a restart overlapping its
// predecessor, two nodes given one name) never act on it at once. A held
// lock skips the pass; the next kick or sweep tries again.
func (r *Reconciler) lockedPass(ctx context.Context, id string, first bool) bool {
	unlock := r.vmLocks.lock(id)
	defer unlock()
	if r.cfg.Locker == nil {
		return r.reconcile(ctx, id, first)
	}
	lease, err := r.cfg.Locker.TryAcquire(ctx, "vm:"+id, r.cfg.LockTTL)
	if err != nil {
		if !errors.Is(err, lock.ErrHeld) && ctx.Err() == nil {
			r.log.Warn("reconcile: lock", "vm", id, "err", err)
		}
		return true // not ours to finish now: the sweep dispatches it again
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = lease.Release(rctx)
	}()
	return r.reconcile(ctx, id, first)
}

// work is a VM's worker: one pass per kick, so operations on a VM never overlap.
func (r *Reconciler) work(ctx context.Context, id string, kick chan struct{}) {
	defer r.wg.Done()
	first := true
	for {
		start := time.Now()
		done := r.lockedPass(ctx, id, first)
		r.cfg.Observer.ObserveReconcile(time.Since(start))
		first = false
		r.mu.Lock()
		if done && len(kick) == 0 {
			delete(r.workers, id)
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			r.mu.Lock()
			delete(r.workers, id)
			r.mu.Unlock()
			return
		case <-kick:
		}
	}
}

// reconcile does one pass for a VM; done means it is no longer ours to watch.
func (r *Reconciler) reconcile(ctx context.Context, id string, first bool) (done bool) {
	v, err := r.cfg.Store.GetVM(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return true
	}
	if err != nil {
		if ctx.Err() == nil {
			r.log.Error("reconcile: get vm", "vm", id, "err", err)
		}
		return false
	}
	if v.Node != r.cfg.Node {
		return true
	}
	d := r.cfg.Driver
	if first {
		if ok, err := d.Adopt(ctx, r.spec(v)); err != nil {
			r.log.Warn("reconcile: adopt", "vm", id, "err", err)
		} else if ok {
			r.log.Info("reconcile: adopted running guest", "vm", id)
		}
		r.reconcileSnapshots(ctx, v)
	}
	if v.State == api.StateProvisioning {
		if !v.UpdatedAt.Before(r.started) {
			return false // a create of this process is at it; it kicks when done
		}
		// An earlier vmd stopped while making its files (kill -9): the create
		// never answered, so undo it, as a failed create is undone.
		r.log.Warn("reconcile: rolling back a create interrupted by a vmd restart", "vm", id)
		r.setState(ctx, &v, api.StateDeleting, "provisioning was interrupted by a vmd restart; rolled back")
		return r.deleteVM(ctx, v)
	}
	r.applyLifetime(ctx, &v)
	evs := r.takeEvents(id)
	if v.Desired != api.DesiredStopped {
		r.clearForce(id)
	}
	switch v.Desired {
	case api.DesiredDeleted:
		return r.deleteVM(ctx, v)
	case api.DesiredStopped:
		r.stopVM(ctx, v)
	case api.DesiredRunning:
		r.runVM(ctx, v, evs)
	case api.DesiredPaused:
		r.pauseVM(ctx, v)
	}
	return false
}

func (r *Reconciler) setState(ctx context.Context, v *store.VM, s api.State, msg string) {
	nv, err := r.cfg.Store.SetState(ctx, v.ID, s, msg)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Error("reconcile: set state", "vm", v.ID, "state", s, "err", err)
		}
		return
	}
	*v = nv
	if r.cfg.StateChanged != nil {
		r.cfg.StateChanged(v.ID, s)
	}
}

func (r *Reconciler) deleteVM(ctx context.Context, v store.VM) bool {
	if v.State != api.StateDeleting {
		r.setState(ctx, &v, api.StateDeleting, "deleting")
	}
	if err := r.cfg.Driver.Destroy(ctx, SpecOf(v)); err != nil {
		r.setState(ctx, &v, api.StateDeleting, "delete failed, retrying: "+err.Error())
		return false
	}
	if err := r.cfg.Store.DeleteVM(ctx, v.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		r.log.Error("reconcile: delete vm record", "vm", v.ID, "err", err)
		return false
	}
	r.mu.Lock()
	delete(r.restarts, v.ID)
	delete(r.events, v.ID)
	delete(r.launched, v.ID)
	delete(r.hostKeysRead, v.ID)
	r.mu.Unlock()
	r.clearForce(v.ID)
	return true
}

func (r *Reconciler) stopVM(ctx context.Context, v store.VM) {
	d := r.cfg.Driver
	r.thaw(ctx, &v)
	if d.Alive(v.ID) {
		if v.State != api.StateStopping {
			r.setState(ctx, &v, api.StateStopping, "stopping")
		}
		if err := d.Stop(ctx, v.ID, r.forceChan(v.ID)); err != nil {
			r.setState(ctx, &v, api.StateError, err.Error())
			return
		}
		r.clearForce(v.ID)
		// What the guest said while going down was our own doing.
		r.takeEvents(v.ID)
	}
	if v.State != api.StateStopped {
		msg := "stopped"
		if sr, ok := d.(StopReporter); ok {
			if how := sr.StopPath(v.ID); how != "" {
				msg = "stopped by " + how
			}
		}
		r.setState(ctx, &v, api.StateStopped, msg)
	}
}

func (r *Reconciler) runVM(ctx context.Context, v store.VM, evs []GuestEvent) {
	d := r.cfg.Driver
	r.thaw(ctx, &v)
	if d.Alive(v.ID) {
		r.markRunning(ctx, &v)
		r.guestEvents(ctx, &v, evs)
		r.learnHostKeys(ctx, &v)
		return
	}
	r.launchOutcome(v.ID, false) // a guest gone before its monitor said running
	// The driver, not the order events arrived in, says how the process
	// ended: a SHUTDOWN read after the exit, or taken while the guest was
	// still alive, must not turn a poweroff into a crash.
	exitMsg := "qemu process is gone"
	exit, known := d.Exit(v.ID)
	if known && exit.Message != "" {
		exitMsg = exit.Message
	}
	// Once recorded as stopped, the same exit must not undo the owner's next start.
	if known && exit.PoweredOff && v.State != api.StateStopped {
		// The guest powered itself off: take it as the owner's wish, not a crash.
		if _, err := r.cfg.Store.SetDesired(ctx, v.ID, api.DesiredStopped); err != nil {
			r.log.Error("reconcile: set desired", "vm", v.ID, "err", err)
			return
		}
		r.setState(ctx, &v, api.StateStopped, "guest powered off")
		return
	}
	if v.State == api.StateError {
		return // stays until the owner stops (and starts) it
	}
	msg := "starting"
	if v.State == api.StateRunning {
		if r.cfg.RestartPolicy == RestartNever {
			r.setState(ctx, &v, api.StateError, "guest died unexpectedly: "+exitMsg)
			return
		}
		if n := r.noteRestart(v.ID); n > r.cfg.MaxRestarts {
			r.setState(ctx, &v, api.StateError, fmt.Sprintf("guest died %d times within %s, giving up: %s",
				n, r.cfg.RestartWindow, exitMsg))
			return
		}
		msg = "restarting: guest died unexpectedly: " + exitMsg
	}
	if v.State != api.StateStarting || msg != "starting" {
		r.setState(ctx, &v, api.StateStarting, msg)
	}
	if err := r.launch(ctx, &v); err != nil {
		if ctx.Err() == nil {
			r.cfg.Observer.ObserveBoot(false)
			r.setState(ctx, &v, api.StateError, err.Error())
		}
		return
	}
	r.mu.Lock()
	r.launched[v.ID] = true
	r.mu.Unlock()
	r.forgetHostKeysRead(v.ID)
	r.markRunning(ctx, &v)
}

// launchAttempts bounds how often one start is tried: a failed launch
// leaves nothing behind, and some failures (fork/exec under load) pass.
const launchAttempts = 3

// launch starts the guest, trying again after a short pause when it fails.
func (r *Reconciler) launch(ctx context.Context, v *store.VM) error {
	var err error
	for i := 1; i <= launchAttempts; i++ {
		if err = r.cfg.Driver.Launch(ctx, r.spec(*v)); err == nil || ctx.Err() != nil {
			return err
		}
		if i < launchAttempts {
			r.log.Warn("reconcile: launch failed, trying again", "vm", v.ID, "attempt", i, "err", err)
			r.setState(ctx, v, api.StateStarting, fmt.Sprintf("launch failed (attempt %d of %d), retrying: %v", i, launchAttempts, err))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(i) * time.Second):
			}
		}
	}
	return err
}

// markRunning records running once the guest's monitor says so.
func (r *Reconciler) markRunning(ctx context.Context, v *store.VM) {
	st, err := r.cfg.Driver.Status(ctx, v.ID)
	if err != nil {
		r.log.Warn("reconcile: status", "vm", v.ID, "err", err)
		return
	}
	switch st {
	case "running":
		r.launchOutcome(v.ID, true)
		if v.State != api.StateRunning {
			r.setState(ctx, v, api.StateRunning, "running")
		}
	case "paused", "io-error", "internal-error", "guest-panicked":
		r.launchOutcome(v.ID, false)
		// QEMU pauses a guest whose disk write failed (a full host disk, say);
		// it shows as error until it runs again.
		if v.State != api.StateError {
			r.setState(ctx, v, api.StateError, "guest is "+st)
		}
	}
}

// launchOutcome tells the observer, once per launch, how it ended.
func (r *Reconciler) launchOutcome(id string, ok bool) {
	r.mu.Lock()
	pending := r.launched[id]
	delete(r.launched, id)
	r.mu.Unlock()
	if pending {
		r.cfg.Observer.ObserveBoot(ok)
	}
}

// noteRestart records an unplanned restart and returns how many fell in the window.
func (r *Reconciler) noteRestart(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	keep := r.restarts[id][:0]
	for _, t := range r.restarts[id] {
		if now.Sub(t) < r.cfg.RestartWindow {
			keep = append(keep, t)
		}
	}
	r.restarts[id] = append(keep, now)
	return len(r.restarts[id])
}
