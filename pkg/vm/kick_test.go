package vm_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/lock"
	"github.com/vmdhq/vmd/pkg/queue"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
)

// recorder is a LocalKicker that remembers what it was told.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) Kick(id string)      { r.add("kick " + id) }
func (r *recorder) ForceStop(id string) { r.add("force-stop " + id) }
func (r *recorder) add(s string)        { r.mu.Lock(); r.calls = append(r.calls, s); r.mu.Unlock() }
func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

func TestQueueKickerRoutesToOwner(t *testing.T) {
	st := openStore(t)
	u := newUser(t, st)
	now := time.Now().UTC()
	for _, v := range []store.VM{
		{ID: vm.NewID(), OwnerID: u.ID, Name: "here", Template: "tiny", CPU: 1, MemoryMB: 128, DiskGB: 1, Node: "a"},
		{ID: vm.NewID(), OwnerID: u.ID, Name: "there", Template: "tiny", CPU: 1, MemoryMB: 128, DiskGB: 1, Node: "b"},
	} {
		v.State, v.Desired, v.CreatedAt, v.UpdatedAt = api.StatePending, api.DesiredRunning, now, now
		if err := st.CreateVM(context.Background(), v); err != nil {
			t.Fatal(err)
		}
	}
	here, _ := st.GetVMByName(context.Background(), u.ID, "here")
	there, _ := st.GetVMByName(context.Background(), u.ID, "there")

	q := queue.NewMemory(queue.Options{})
	t.Cleanup(func() { q.Close() })
	onA, onB := &recorder{}, &recorder{}
	a := &vm.QueueKicker{Store: st, Queue: q, Local: onA, Node: "a"}
	b := &vm.QueueKicker{Store: st, Queue: q, Local: onB, Node: "b"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = b.ConsumeJobs(ctx, "b-1") }()

	a.Kick(here.ID)
	a.Kick(there.ID)
	a.ForceStop(there.ID)
	if got := onA.got(); len(got) != 1 || got[0] != "kick "+here.ID {
		t.Fatalf("node a handled %v", got)
	}
	testutil.WaitFor(5*time.Second, func() bool { return len(onB.got()) >= 2 })
	if got := onB.got(); len(got) != 2 || got[0] != "kick "+there.ID || got[1] != "force-stop "+there.ID {
		t.Fatalf("node b handled %v", got)
	}
}

// heldLocker always reports the lock as held by someone else.
type heldLocker struct {
	mu    sync.Mutex
	tries int
}

func (h *heldLocker) TryAcquire(context.Context, string, time.Duration) (lock.Lease, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tries++
	return nil, lock.ErrHeld
}

func (h *heldLocker) Acquire(ctx context.Context, k string, d time.Duration) (lock.Lease, error) {
	return h.TryAcquire(ctx, k, d)
}

// countingDriver records Destroy calls and does nothing else (it stands
// below the reconciler, which is what is under test).
type countingDriver struct {
	mu        sync.Mutex
	destroyed int
}

func (d *countingDriver) Provision(context.Context, vm.GuestSpec, string) error { return nil }
func (d *countingDriver) Destroy(context.Context, vm.GuestSpec) error {
	d.mu.Lock()
	d.destroyed++
	d.mu.Unlock()
	return nil
}
func (d *countingDriver) Launch(context.Context, vm.GuestSpec) error          { return nil }
func (d *countingDriver) Adopt(context.Context, vm.GuestSpec) (bool, error)   { return false, nil }
func (d *countingDriver) Alive(string) bool                                   { return false }
func (d *countingDriver) Exit(string) (vm.GuestExit, bool)                    { return vm.GuestExit{}, false }
func (d *countingDriver) Status(context.Context, string) (string, error)      { return "shutdown", nil }
func (d *countingDriver) Stop(context.Context, string, <-chan struct{}) error { return nil }
func (d *countingDriver) Subscribe(func(vm.GuestEvent))                       {}

// A VM whose lock another process holds is left alone by this reconciler.
func TestReconcilerSkipsLockedVM(t *testing.T) {
	st := openStore(t)
	u := newUser(t, st)
	now := time.Now().UTC()
	v := store.VM{ID: vm.NewID(), OwnerID: u.ID, Name: "locked", Template: "tiny", CPU: 1, MemoryMB: 128, DiskGB: 1,
		Node: "a", State: api.StateStopped, Desired: api.DesiredDeleted, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateVM(context.Background(), v); err != nil {
		t.Fatal(err)
	}
	locker := &heldLocker{}
	drv := &countingDriver{}
	rec := vm.NewReconciler(vm.ReconcilerConfig{Store: st, Driver: drv, Node: "a", Locker: locker, Interval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = rec.Run(ctx); close(done) }()
	// Three passes found the VM locked; each would have acted on it.
	tries := func() int { locker.mu.Lock(); defer locker.mu.Unlock(); return locker.tries }
	testutil.Eventually(t, 5*time.Second, "the reconciler to ask for the lock three times", func() bool { return tries() >= 3 })
	cancel()
	<-done
	if _, err := st.GetVM(context.Background(), v.ID); err != nil || drv.destroyed != 0 {
		t.Fatalf("locked VM was acted on: destroyed %d times, record: %v", drv.destroyed, err)
	}
	// With the lock free, the same reconciler deletes it.
	rec = vm.NewReconciler(vm.ReconcilerConfig{Store: st, Driver: drv, Node: "a", Locker: lock.NewMemory(), Interval: 50 * time.Millisecond})
	ctx, cancel = context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() { _ = rec.Run(ctx); close(done) }()
	testutil.Eventually(t, 5*time.Second, "the unlocked VM to be deleted", func() bool {
		_, err := st.GetVM(context.Background(), v.ID)
		return err != nil
	})
	cancel()
	<-done
}
