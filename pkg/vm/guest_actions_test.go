package vm_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/qemu"
)

// typeLine types s and Enter on the guest's keyboard (the shell on tty1).
func typeLine(t *testing.T, d *qemu.Driver, id, s string) {
	t.Helper()
	for _, r := range s {
		key := string(r)
		if r == ' ' {
			key = "spc"
		}
		if err := d.SendKey(context.Background(), id, key); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.SendKey(context.Background(), id, "ret"); err != nil {
		t.Fatal(err)
	}
}

// TestReconcilerGuestActions: what a guest does to itself under the
// "always" policy. A poweroff from inside (Ctrl-Alt-Del, which the tiny
// image's init turns into poweroff, or poweroff typed) ends in stopped and
// is not restarted; a reboot resets in place and stays running with the
// same process. (A crash, kill -9 of QEMU, is TestReconcilerCrash.)
func TestReconcilerGuestActions(t *testing.T) {
	t.Parallel()
	base := tinyImage(t)
	tests := []struct {
		name   string
		action func(t *testing.T, d *qemu.Driver, id string)
		reboot bool
	}{
		{"ctrl-alt-del", func(t *testing.T, d *qemu.Driver, id string) {
			if err := d.SendKey(context.Background(), id, "ctrl", "alt", "delete"); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"poweroff", func(t *testing.T, d *qemu.Driver, id string) { typeLine(t, d, id, "poweroff") }, false},
		{"reboot", func(t *testing.T, d *qemu.Driver, id string) { typeLine(t, d, id, "reboot") }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := openStore(t)
			l := testLayout(t)
			u := newUser(t, st)
			n := startNode(t, st, l, base, vm.RestartAlways)
			v := create(t, n, u, tc.name)
			waitState(t, st, v.ID, api.StateRunning, 30*time.Second)
			pid := n.drv.PID(v.ID)
			serial := l.VMFile(u.ID, v.ID, vm.SerialFile)
			waitSerial(t, serial, "vmd-tiny: booted", bootLimit)
			// The serial shell's prompt: init has started the shells, tty1's too.
			waitSerial(t, serial, "vmd-tiny:~# ", bootLimit)
			waitReady(t, st, v.ID, true, bootLimit)
			tc.action(t, n.drv, v.ID)
			if tc.reboot {
				waitSerial(t, serial, "vmd-tiny: boot 2", bootLimit)
				got := waitState(t, st, v.ID, api.StateRunning, 10*time.Second)
				if p := n.drv.PID(v.ID); p != pid {
					t.Fatalf("reboot replaced the process: pid %d, was %d", p, pid)
				}
				waitMessage(t, n, u, v.ID, "guest reset", 10*time.Second)
				// Readiness goes with the reset and comes back with the new boot.
				waitMessage(t, n, u, v.ID, "not ready: the guest reset", 10*time.Second)
				waitReady(t, st, v.ID, true, bootLimit)
				if got.Desired != api.DesiredRunning {
					t.Fatalf("desired %s after reboot", got.Desired)
				}
			} else {
				got := waitState(t, st, v.ID, api.StateStopped, 60*time.Second)
				if got.Desired != api.DesiredStopped || got.Message != "guest powered off" {
					t.Fatalf("after poweroff: desired %s, message %q", got.Desired, got.Message)
				}
				if !processGone(pid) || n.drv.Alive(v.ID) {
					t.Fatal("qemu alive after the guest powered off")
				}
				if strings.Contains(eventMessages(t, n, u, v.ID), "restarting") {
					t.Fatalf("a poweroff was taken for a crash: %s", eventMessages(t, n, u, v.ID))
				}
				// The owner starts it again: the old exit does not stop it a second time.
				if _, err := n.svc.Start(context.Background(), u, v.ID); err != nil {
					t.Fatal(err)
				}
				waitSerial(t, serial, "vmd-tiny: boot 2", bootLimit)
				if got := waitState(t, st, v.ID, api.StateRunning, 10*time.Second); got.Desired != api.DesiredRunning {
					t.Fatalf("after start: desired %s", got.Desired)
				}
			}
			cleanup(t, n, st, u, v.ID)
		})
	}
}

// eventMessages joins the VM's recorded state changes, for assertions.
func eventMessages(t *testing.T, n *node, owner store.User, id string) string {
	t.Helper()
	got, err := n.svc.Get(context.Background(), owner, id)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range got.Events {
		b.WriteString(string(e.State) + ": " + e.Message + "\n")
	}
	return b.String()
}

func waitMessage(t *testing.T, n *node, owner store.User, id, msg string, limit time.Duration) {
	t.Helper()
	if testutil.WaitFor(limit, func() bool { return strings.Contains(eventMessages(t, n, owner, id), msg) }) {
		return
	}
	t.Fatalf("no %q among the events after %v:\n%s", msg, limit, eventMessages(t, n, owner, id))
}

// waitReady waits until the VM's recorded readiness is want.
func waitReady(t *testing.T, st store.Store, id string, want bool, limit time.Duration) {
	t.Helper()
	testutil.Eventually(t, limit, fmt.Sprintf("vm %s ready=%v", id, want), func() bool {
		v, err := st.GetVM(context.Background(), id)
		return err == nil && v.Ready == want
	})
}
