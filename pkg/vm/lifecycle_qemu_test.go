package vm_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/qemu"
)

// passes counts the reconciler's finished passes.
type passes struct{ n atomic.Int64 }

func (p *passes) ObserveProvision(time.Duration, error) {}
func (p *passes) ObserveBoot(bool)                      {}
func (p *passes) ObserveReconcile(time.Duration)        { p.n.Add(1) }

// await waits until k more passes than now have finished.
func (p *passes) await(t *testing.T, k int64) {
	t.Helper()
	want := p.n.Load() + k
	waitCond(t, "reconcile passes", 15*time.Second, func() bool { return p.n.Load() >= want })
}

// startClockNode is startNode whose service and reconciler read c.
func startClockNode(t *testing.T, st store.Store, l vm.Layout, base string, c *fakeClock) (*node, *passes) {
	t.Helper()
	drv, err := qemu.New(qemu.Config{Layout: l, Accel: "tcg", StopTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	obs := &passes{}
	t.Cleanup(func() { destroyAll(t, st, l) })
	rec := vm.NewReconciler(vm.ReconcilerConfig{Store: st, Driver: drv, Node: "n1", Layout: l,
		Interval: 200 * time.Millisecond, Now: c.Now, Observer: obs})
	svc := vm.NewService(vm.ServiceConfig{Store: st, Templates: templates{base}, Provisioner: rec,
		Kicker: rec, Node: "n1"})
	svc.SetClock(c.Now)
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{drv: drv, rec: rec, svc: svc, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(n.done); _ = rec.Run(ctx) }()
	t.Cleanup(n.shutdown)
	return n, obs
}

// feedMessages is what the change feed recorded of a VM (it outlives the VM).
func feedMessages(t *testing.T, st store.Store, owner, id string) string {
	t.Helper()
	cs, err := st.ListChanges(context.Background(), owner, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, c := range cs {
		if c.VMID == id {
			b.WriteString(string(c.State) + ": " + c.Message + "\n")
		}
	}
	return b.String()
}

// TestReconcilerExpiry: a running VM whose TTL passes is stopped and
// deleted, with an event saying why; one whose TTL passed while vmd was
// down goes on the next vmd's first pass. No process, file or usage is left.
func TestReconcilerExpiry(t *testing.T) {
	t.Parallel()
	base := tinyImage(t)
	st := openStore(t)
	l := testLayout(t)
	u := newUser(t, st)
	c := newClock()
	ctx := context.Background()
	n1, _ := startClockNode(t, st, l, base, c)
	live, err := n1.svc.Create(ctx, u.ID, api.CreateVMRequest{Name: "live", Template: "tiny", MemoryMB: 128, TTL: "1m"})
	if err != nil {
		t.Fatal(err)
	}
	down, err := n1.svc.Create(ctx, u.ID, api.CreateVMRequest{Name: "down", Template: "tiny", MemoryMB: 128, TTL: "2m"})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, st, live.ID, api.StateRunning, 30*time.Second)
	waitState(t, st, down.ID, api.StateRunning, 30*time.Second)
	pids := []int{n1.drv.PID(live.ID), n1.drv.PID(down.ID)}

	c.Advance(59 * time.Second)
	if _, err := n1.svc.Pause(ctx, u, live.ID); err != nil { // kicks a pass: not due yet
		t.Fatal(err)
	}
	waitState(t, st, live.ID, api.StatePaused, 15*time.Second)
	c.Advance(time.Second)
	waitGone(t, st, live.ID, 15*time.Second)
	if msgs := feedMessages(t, st, u.ID, live.ID); !strings.Contains(msgs, "deleting: expired at "+live.ExpiresAt.UTC().Format(time.RFC3339)) {
		t.Fatalf("no expiry event:\n%s", msgs)
	}
	if !processGone(pids[0]) {
		t.Fatal("the expired vm's qemu is still running")
	}
	assertNoFiles(t, l, u.ID, live.ID)

	// vmd stops; the other VM's deadline passes while it is down.
	n1.shutdown()
	c.Advance(2 * time.Minute)
	startClockNode(t, st, l, base, c)
	waitGone(t, st, down.ID, 15*time.Second)
	if msgs := feedMessages(t, st, u.ID, down.ID); !strings.Contains(msgs, "expired at") {
		t.Fatalf("no expiry event:\n%s", msgs)
	}
	if !processGone(pids[1]) {
		t.Fatal("the vm that expired while vmd was down still runs")
	}
	assertNoFiles(t, l, u.ID, down.ID)
	if fu, err := st.GetUser(ctx, u.ID); err != nil || fu.Usage != (api.Quota{}) {
		t.Fatalf("usage after expiry: %+v, %v", fu.Usage, err)
	}
}

// TestReconcilerIdleStop: an idle-stop VM is stopped once that long passed
// without activity, not while a console (Touch) keeps it in use; the event
// says why, and a start brings it back.
func TestReconcilerIdleStop(t *testing.T) {
	t.Parallel()
	base := tinyImage(t)
	st := openStore(t)
	l := testLayout(t)
	u := newUser(t, st)
	c := newClock()
	ctx := context.Background()
	n, obs := startClockNode(t, st, l, base, c)
	v, err := n.svc.Create(ctx, u.ID, api.CreateVMRequest{Name: "idle", Template: "tiny", MemoryMB: 128, IdleStop: "1m"})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, st, v.ID, api.StateRunning, 30*time.Second)
	c.Advance(50 * time.Second)
	n.svc.Touch(ctx, v.ID) // a console session's touch
	// Let a pass that read the VM before the touch finish before the clock
	// moves on: read at 100 s, it would rightly take the VM for idle (CI
	// saw that under load).
	obs.await(t, 2)
	c.Advance(50 * time.Second)
	// Still running 100 s after creation: the touch at 50 s counts. Two
	// more passes (each over this node's only VM) have looked at it.
	obs.await(t, 2)
	if got, _ := st.GetVM(ctx, v.ID); got.State != api.StateRunning || got.Desired != api.DesiredRunning {
		t.Fatalf("touched vm: %s/%s (%s)", got.State, got.Desired, got.Message)
	}
	c.Advance(11 * time.Second)
	got := waitState(t, st, v.ID, api.StateStopped, 30*time.Second)
	if got.Desired != api.DesiredStopped {
		t.Fatalf("desired %s after idle stop", got.Desired)
	}
	waitMessage(t, n, u, v.ID, "idle for 1m0s", 5*time.Second)
	if _, err := n.svc.Start(ctx, u, v.ID); err != nil {
		t.Fatal(err)
	}
	if got := waitState(t, st, v.ID, api.StateRunning, 30*time.Second); got.Desired != api.DesiredRunning {
		t.Fatalf("restart after idle stop: %s", got.Desired)
	}
	cleanup(t, n, st, u, v.ID)
}

// serialSize is how much the guest has written to its serial port so far.
func serialSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestReconcilerPause: pause freezes the guest (its serial output stops),
// a vmd restart keeps it paused (same process, QMP still paused), resume
// lets it go on where it was, stop and delete work from paused.
func TestReconcilerPause(t *testing.T) {
	t.Parallel()
	base := tinyImage(t)
	st := openStore(t)
	l := testLayout(t)
	u := newUser(t, st)
	ctx := context.Background()
	n1 := startNode(t, st, l, base, vm.RestartAlways)
	v := create(t, n1, u, "frozen")
	waitState(t, st, v.ID, api.StateRunning, 30*time.Second)
	serial := l.VMFile(u.ID, v.ID, vm.SerialFile)
	waitSerial(t, serial, "vmd-tiny:~# ", bootLimit)
	if _, err := n1.svc.Resume(ctx, u, v.ID); err != nil { // running: nothing to do
		t.Fatalf("resume of a running vm: %v", err)
	}
	// A clock on the serial port, typed on tty1's shell: one line a second.
	typeText(t, n1.drv, v.ID, "while true; do echo tick; sleep 1; done >/dev/ttyS0")
	waitCond(t, "ticks on the serial port", bootLimit, func() bool {
		b, _ := os.ReadFile(serial)
		return strings.Count(string(b), "tick") >= 2
	})
	pid := n1.drv.PID(v.ID)

	if _, err := n1.svc.Pause(ctx, u, v.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, st, v.ID, api.StatePaused, 15*time.Second)
	if s, err := n1.drv.Status(ctx, v.ID); err != nil || s != "paused" {
		t.Fatalf("qmp status %q %v, want paused", s, err)
	}
	size := serialSize(t, serial)
	testutil.Holds(t, 3*time.Second, "no serial output while paused", func() bool { return serialSize(t, serial) == size })

	// vmd restarts: the guest is adopted and stays paused.
	n1.shutdown()
	n2 := startNode(t, st, l, base, vm.RestartAlways)
	waitPID(t, n2.drv, v.ID, func(p int) bool { return p == pid }, 15*time.Second)
	waitCond(t, "adopted guest's monitor", 15*time.Second, func() bool {
		s, err := n2.drv.Status(ctx, v.ID)
		return err == nil && s == "paused"
	})
	testutil.Holds(t, 2*time.Second, "paused after adoption", func() bool {
		got, err := st.GetVM(ctx, v.ID)
		return err == nil && got.State == api.StatePaused && serialSize(t, serial) == size
	})
	if _, err := n2.svc.Pause(ctx, u, v.ID); err != nil { // paused: nothing to do
		t.Fatalf("pause of a paused vm: %v", err)
	}

	if _, err := n2.svc.Resume(ctx, u, v.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, st, v.ID, api.StateRunning, 15*time.Second)
	waitCond(t, "ticks after resume", 30*time.Second, func() bool { return serialSize(t, serial) > size })
	if p := n2.drv.PID(v.ID); p != pid {
		t.Fatalf("resume replaced the process: %d, was %d", p, pid)
	}

	// Stop from paused: the guest is thawed so it can shut down cleanly.
	if _, err := n2.svc.Pause(ctx, u, v.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, st, v.ID, api.StatePaused, 15*time.Second)
	if _, err := n2.svc.Stop(ctx, u, v.ID, false); err != nil {
		t.Fatal(err)
	}
	waitState(t, st, v.ID, api.StateStopped, 30*time.Second)
	if !processGone(pid) {
		t.Fatal("qemu alive after stop from paused")
	}
	if _, err := n2.svc.Pause(ctx, u, v.ID); !errors.Is(err, vm.ErrConflict) {
		t.Fatalf("pause of a stopped vm: %v, want a conflict", err)
	}
	if _, err := n2.svc.Resume(ctx, u, v.ID); !errors.Is(err, vm.ErrConflict) {
		t.Fatalf("resume of a stopped vm: %v, want a conflict", err)
	}

	// Delete from paused.
	if _, err := n2.svc.Start(ctx, u, v.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, st, v.ID, api.StateRunning, 30*time.Second)
	pid = n2.drv.PID(v.ID)
	if _, err := n2.svc.Pause(ctx, u, v.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, st, v.ID, api.StatePaused, 15*time.Second)
	if _, err := n2.svc.Delete(ctx, u, v.ID); err != nil {
		t.Fatal(err)
	}
	waitGone(t, st, v.ID, 15*time.Second)
	if !processGone(pid) {
		t.Fatal("qemu alive after delete from paused")
	}
	assertNoFiles(t, l, u.ID, v.ID)
}

// typeText types s and Enter on the guest's keyboard, with the few
// symbols a shell line needs.
func typeText(t *testing.T, d *qemu.Driver, id, s string) {
	t.Helper()
	keys := map[rune][]string{' ': {"spc"}, ';': {"semicolon"}, '/': {"slash"}, '>': {"shift", "dot"},
		'.': {"dot"}, '-': {"minus"}}
	for _, r := range s {
		k, ok := keys[r]
		switch {
		case ok:
		case unicode.IsUpper(r):
			k = []string{"shift", string(unicode.ToLower(r))}
		default:
			k = []string{string(r)}
		}
		if err := d.SendKey(context.Background(), id, k...); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.SendKey(context.Background(), id, "ret"); err != nil {
		t.Fatal(err)
	}
}
