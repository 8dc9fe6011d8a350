package vm_test

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
)

const bootLimit = 90 * time.Second // TCG on two busy cores

// TestReconcilerLifecycle drives one VM through create, stop, start and
// delete with the service and reconciler wired as vmd wires them.
func TestReconcilerLifecycle(t *testing.T) {
	t.Parallel()
	base := tinyImage(t)
	before := fileSHA(t, base)
	st := openStore(t)
	l := testLayout(t)
	n := startNode(t, st, l, base, vm.RestartAlways)
	u := newUser(t, st)
	ctx := context.Background()

	v := create(t, n, u, "life")
	waitState(t, st, v.ID, api.StateRunning, 30*time.Second)
	serial := l.VMFile(u.ID, v.ID, vm.SerialFile)
	waitSerial(t, serial, "vmd-tiny: boot 1", bootLimit)

	if _, err := n.svc.Stop(ctx, u, v.ID, true); err != nil {
		t.Fatal(err)
	}
	waitState(t, st, v.ID, api.StateStopped, 15*time.Second)
	if n.drv.Alive(v.ID) {
		t.Fatal("process alive after stop")
	}
	if _, err := n.svc.Start(ctx, u, v.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, st, v.ID, api.StateRunning, 30*time.Second)
	pid := n.drv.PID(v.ID)
	waitSerial(t, serial, "vmd-tiny: boot 2", bootLimit)

	got, err := n.svc.Get(ctx, u, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, e := range got.Events {
		seen = append(seen, string(e.State))
	}
	for _, want := range []api.State{api.StateStarting, api.StateRunning, api.StateStopping, api.StateStopped} {
		if !strings.Contains(strings.Join(seen, " "), string(want)) {
			t.Errorf("no %s event in %v", want, seen)
		}
	}

	if _, err := n.svc.Delete(ctx, u, v.ID); err != nil {
		t.Fatal(err)
	}
	waitGone(t, st, v.ID, 15*time.Second)
	if !processGone(pid) {
		t.Fatal("qemu left running after delete")
	}
	assertNoFiles(t, l, u.ID, v.ID)
	if fu, err := st.GetUser(ctx, u.ID); err != nil || fu.Usage != (api.Quota{}) {
		t.Fatalf("usage after delete: %+v, %v", fu.Usage, err)
	}
	if fileSHA(t, base) != before {
		t.Fatal("base image was written")
	}
}

// TestReconcilerAdoptsAfterRestart restarts "vmd" (a new driver and
// reconciler on the same store and dirs): the guests keep running and are
// adopted with their PIDs, and stop and delete still work.
func TestReconcilerAdoptsAfterRestart(t *testing.T) {
	t.Parallel()
	base := tinyImage(t)
	st := openStore(t)
	l := testLayout(t)
	u := newUser(t, st)
	n1 := startNode(t, st, l, base, vm.RestartAlways)
	a, b := create(t, n1, u, "a"), create(t, n1, u, "b")
	pids := map[string]int{}
	for _, v := range []api.VM{a, b} {
		waitState(t, st, v.ID, api.StateRunning, 30*time.Second)
		pids[v.ID] = n1.drv.PID(v.ID)
	}
	n1.shutdown()

	n2 := startNode(t, st, l, base, vm.RestartAlways)
	for id, pid := range pids {
		waitPID(t, n2.drv, id, func(p int) bool { return p == pid }, 15*time.Second)
	}
	// Nothing was restarted: the state never left running.
	for id := range pids {
		v, err := st.GetVM(context.Background(), id)
		if err != nil || v.State != api.StateRunning {
			t.Fatalf("vm %s after adoption: %s %v", id, v.State, err)
		}
	}
	ctx := context.Background()
	if _, err := n2.svc.Stop(ctx, u, a.ID, true); err != nil {
		t.Fatal(err)
	}
	waitState(t, st, a.ID, api.StateStopped, 15*time.Second)
	if _, err := n2.svc.Delete(ctx, u, b.ID); err != nil {
		t.Fatal(err)
	}
	waitGone(t, st, b.ID, 15*time.Second)
	for id, pid := range pids {
		if !processGone(pid) {
			t.Errorf("vm %s: pid %d still running", id, pid)
		}
	}
	assertNoFiles(t, l, u.ID, b.ID)
}

// TestReconcilerCrash kills QEMU with SIGKILL and checks each restart policy.
func TestReconcilerCrash(t *testing.T) {
	t.Parallel()
	base := tinyImage(t)
	for _, policy := range []vm.RestartPolicy{vm.RestartNever, vm.RestartAlways} {
		t.Run(string(policy), func(t *testing.T) {
			t.Parallel()
			// Each its own store and dirs: two reconcilers of one node would share VMs.
			st := openStore(t)
			l := testLayout(t)
			u := newUser(t, st)
			n := startNode(t, st, l, base, policy)
			v := create(t, n, u, "crash-"+string(policy))
			waitState(t, st, v.ID, api.StateRunning, 30*time.Second)
			pid := n.drv.PID(v.ID)
			serial := filepath.Join(l.VMDir(u.ID, v.ID), vm.SerialFile)
			// Let the guest count its first boot, so a restart shows as boot 2.
			waitSerial(t, serial, "vmd-tiny: boot 1", bootLimit)
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			switch policy {
			case vm.RestartNever:
				got := waitState(t, st, v.ID, api.StateError, 5*time.Second)
				if !strings.Contains(got.Message, "died") {
					t.Errorf("message %q", got.Message)
				}
			case vm.RestartAlways:
				waitPID(t, n.drv, v.ID, func(p int) bool { return p != 0 && p != pid }, 5*time.Second)
				waitState(t, st, v.ID, api.StateRunning, 5*time.Second)
				waitSerial(t, serial, "vmd-tiny: boot 2", bootLimit)
			}
			t.Logf("%s: state changed %v after kill -9", policy, time.Since(start))
			cleanup(t, n, st, u, v.ID)
		})
	}
}

func cleanup(t *testing.T, n *node, st store.Store, u store.User, id string) {
	t.Helper()
	if _, err := n.svc.Delete(context.Background(), u, id); err != nil {
		t.Fatal(err)
	}
	waitGone(t, st, id, 15*time.Second)
}
