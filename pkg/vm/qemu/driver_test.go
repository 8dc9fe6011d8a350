package qemu

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/vmtest"
)

// TestDriverLifecycle boots the tiny image, stops it, boots it again from
// the same overlay and destroys it, checking the base is never written.
func TestDriverLifecycle(t *testing.T) {
	t.Parallel()
	base := tinyImage(t)
	before := sha(t, base)
	l := vmtest.Layout(t)
	d := newDriver(t, l)
	events := make(chan vm.GuestEvent, 64)
	d.Subscribe(func(e vm.GuestEvent) { events <- e })
	ctx := context.Background()
	v := testVM("life")
	v.UserData = "#cloud-config\nhostname: life\n"
	if err := d.Provision(ctx, v, base); err != nil {
		t.Fatal(err)
	}
	dir := l.VMDir(v.OwnerID, v.ID)
	for _, f := range []string{vm.DiskFile, vm.SeedFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("after provision: %v", err)
		}
	}
	if err := d.Launch(ctx, v); err != nil {
		t.Fatal(err)
	}
	pid := d.PID(v.ID)
	if pid == 0 || !d.Alive(v.ID) {
		t.Fatal("no live guest after launch")
	}
	if st, err := d.Status(ctx, v.ID); err != nil || st != "running" {
		t.Fatalf("status = %q, %v", st, err)
	}
	checkProcess(t, pid, filepath.Join(dir, vm.PIDFile))
	if _, err := os.Stat(l.Socket(v.ID, vm.VNCSocket)); err != nil {
		t.Fatalf("vnc socket: %v", err)
	}
	serial := filepath.Join(dir, vm.SerialFile)
	waitSerial(t, serial, "vmd-tiny: boot 1", 60*time.Second)
	waitSerial(t, serial, "vmd-tiny: booted", 10*time.Second)
	// The guest prints the seed's first user-data line once it mounted it.
	waitSerial(t, serial, "vmd-tiny: user-data: #cloud-config", 30*time.Second)

	start := time.Now()
	if err := d.Stop(ctx, v.ID, nil); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("graceful stop took %v", took)
	if took >= d.cfg.StopTimeout {
		t.Errorf("guest did not power down on the ACPI button (stop took %v)", took)
	}
	if d.Alive(v.ID) || !processGone(pid) {
		t.Fatal("guest alive after stop")
	}
	if _, err := os.Stat(l.RuntimeDir(v.ID)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("runtime dir after stop: %v", err)
	}
	waitEvent(t, events, v.ID, vm.EventExited)

	if err := d.Launch(ctx, v); err != nil {
		t.Fatal(err)
	}
	pid = d.PID(v.ID)
	waitSerial(t, serial, "vmd-tiny: boot 2", 60*time.Second)
	if err := d.Destroy(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := d.Destroy(ctx, v); err != nil {
		t.Fatalf("second destroy: %v", err)
	}
	if !processGone(pid) {
		t.Fatal("process left after destroy")
	}
	assertGone(t, l, v.OwnerID, v.ID)
	if sha(t, base) != before {
		t.Fatal("base image changed")
	}
}

// checkProcess verifies what the issue promises about a running QEMU.
func checkProcess(t *testing.T, pid int, pidFile string) {
	t.Helper()
	if got, ok := ownProcess(pidFile); !ok || got != pid {
		t.Fatalf("pid file: %d %v, want %d", got, ok, pid)
	}
	st, err := os.ReadFile("/proc/" + itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if g, ok := strings.CutPrefix(line, "Groups:"); ok && os.Geteuid() == 0 && strings.TrimSpace(g) != "" {
			t.Fatalf("qemu kept supplementary groups %q", strings.TrimSpace(g))
		}
	}
	if os.Geteuid() == 0 && strings.Contains(string(st), "\nUid:\t0") {
		t.Fatal("qemu runs as root")
	}
	sid, err := unix.Getsid(pid)
	if err != nil || sid != pid {
		t.Fatalf("qemu is not a session leader: sid %d, %v", sid, err)
	}
}

func assertGone(t *testing.T, l vm.Layout, owner, id string) {
	t.Helper()
	for _, p := range []string{l.VMDir(owner, id), filepath.Dir(l.VMDir(owner, id)), l.RuntimeDir(id)} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind (%v)", p, err)
		}
	}
}

func waitEvent(t *testing.T, events <-chan vm.GuestEvent, id, kind string) vm.GuestEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-events:
			if e.ID == id && e.Kind == kind {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event for %s", kind, id)
		}
	}
}

func TestProvisionErrors(t *testing.T) {
	t.Parallel()
	needQEMU(t)
	l := vmtest.Layout(t)
	d := newDriver(t, l)
	tmp := t.TempDir()
	corrupt := filepath.Join(tmp, "corrupt.qcow2")
	if err := os.WriteFile(corrupt, []byte("QFI\xfbthis is not a qcow2 image at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(tmp, "raw.img")
	if err := writeBootDisk(raw, "x"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, base, want string
	}{
		{"missing", filepath.Join(tmp, "nope.qcow2"), "no such file"},
		{"corrupt", corrupt, "not a valid qcow2"},
		{"raw", raw, "not a valid qcow2"},
		{"empty", "", "no base image"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := testVM(tc.name)
			err := d.Provision(context.Background(), v, tc.base)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), v.ID) {
				t.Fatalf("err = %v, want one naming %s and saying %q", err, v.ID, tc.want)
			}
			assertGone(t, l, v.OwnerID, v.ID)
		})
	}
}

func TestCheckFree(t *testing.T) {
	if err := checkFree(t.TempDir(), 1<<62); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("err = %v, want ErrNoSpace", err)
	}
	if err := checkFree(t.TempDir(), 1); err != nil {
		t.Fatal(err)
	}
}

// TestDriverAdoptAndKill hands a running guest from one driver to another,
// as a vmd restart does, and checks a kill -9 is noticed.
func TestDriverAdoptAndKill(t *testing.T) {
	t.Parallel()
	base := tinyImage(t)
	l := vmtest.Layout(t)
	ctx := context.Background()
	d1 := newDriver(t, l)
	v := testVM("adopt")
	if err := d1.Provision(ctx, v, base); err != nil {
		t.Fatal(err)
	}
	if err := d1.Launch(ctx, v); err != nil {
		t.Fatal(err)
	}
	pid := d1.PID(v.ID)
	d1.Close()

	d2 := newDriver(t, l)
	events := make(chan vm.GuestEvent, 64)
	d2.Subscribe(func(e vm.GuestEvent) { events <- e })
	// A VM with no process is not adopted, and its stale runtime files go.
	other := testVM("never-started")
	if ok, err := d2.Adopt(ctx, other); ok || err != nil {
		t.Fatalf("adopt of a stopped vm: %v %v", ok, err)
	}
	ok, err := d2.Adopt(ctx, v)
	if err != nil || !ok {
		t.Fatalf("adopt: %v %v", ok, err)
	}
	if got := d2.PID(v.ID); got != pid {
		t.Fatalf("adopted pid %d, want %d", got, pid)
	}
	if st, err := d2.Status(ctx, v.ID); err != nil || st != "running" {
		t.Fatalf("status after adopt = %q, %v", st, err)
	}
	// QEMU serves one QMP client at a time: a second one waits for ever,
	// as with a hung QEMU, and must time out instead of blocking.
	hctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	start := time.Now()
	if _, err := dialMonitor(hctx, l.Socket(v.ID, vm.QMPSocket), nil); err == nil {
		t.Fatal("second qmp client connected")
	}
	cancel()
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("blocked qmp handshake took %v to give up", took)
	}
	// A dropped connection is dialled again on the next command.
	d2.get(v.ID).closeMonitor()
	if st, err := d2.Status(ctx, v.ID); err != nil || st != "running" {
		t.Fatalf("status after reconnect = %q, %v", st, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	waitEvent(t, events, v.ID, vm.EventExited)
	t.Logf("kill -9 noticed after %v", time.Since(start))
	if d2.Alive(v.ID) {
		t.Fatal("alive after kill")
	}
	if err := d2.Destroy(ctx, v); err != nil {
		t.Fatal(err)
	}
	assertGone(t, l, v.OwnerID, v.ID)
}
