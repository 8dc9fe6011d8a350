package qemu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/vmtest"
)

// TestGuestsCannotReadEachOther: two guests run under two uids, and one
// guest's uid can open none of the other's files and sockets, while it can
// its own.
func TestGuestsCannotReadEachOther(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Fatal("this test starts guests under their own uids, which needs root")
	}
	base := tinyImage(t)
	l := vmtest.Layout(t)
	d := newDriver(t, l)
	ctx := context.Background()
	a, b := testVM("a"), testVM("b")
	b.UserData = "#cloud-config\n"
	for _, v := range []Spec{a, b} {
		if err := d.Provision(ctx, v, base); err != nil {
			t.Fatal(err)
		}
		if err := d.Launch(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	uidOf := func(v Spec) uint32 {
		st, err := os.Stat("/proc/" + itoa(d.PID(v.ID)))
		if err != nil {
			t.Fatal(err)
		}
		return st.Sys().(*syscall.Stat_t).Uid
	}
	ua, ub := uidOf(a), uidOf(b)
	if ua == ub || !DefaultUIDs.contains(ua) || !DefaultUIDs.contains(ub) {
		t.Fatalf("guest uids %d and %d: want two different uids of %s", ua, ub, DefaultUIDs)
	}
	files := func(v Spec) []string {
		dir := l.VMDir(v.OwnerID, v.ID)
		return []string{dir, filepath.Join(dir, vm.DiskFile), filepath.Join(dir, vm.SerialFile),
			filepath.Join(dir, vm.PIDFile), l.Socket(v.ID, vm.VNCSocket), l.RuntimeDir(v.ID)}
	}
	// Both have written their serial logs (the probe reads a byte of each).
	for _, v := range []Spec{a, b} {
		waitSerial(t, filepath.Join(l.VMDir(v.OwnerID, v.ID), vm.SerialFile), "vmd-tiny: boot 1", 60*time.Second)
	}
	theirs := append(files(b), filepath.Join(l.VMDir(b.OwnerID, b.ID), vm.SeedFile), l.Socket(b.ID, vm.QMPSocket))
	for p, res := range asUID(t, ua, theirs...) {
		if !strings.Contains(res, "permission denied") {
			t.Errorf("guest a's uid %d opening b's %s: %s, want permission denied", ua, p, res)
		}
	}
	// Its own files and its own VNC socket it can use: the check above is not vacuous.
	for p, res := range asUID(t, ua, files(a)...) {
		if res != "ok" && !strings.Contains(res, "is a directory") {
			t.Errorf("guest a's uid %d opening its own %s: %s", ua, p, res)
		}
	}
	for _, v := range []Spec{a, b} {
		dir := l.VMDir(v.OwnerID, v.ID)
		for _, p := range []string{dir, l.RuntimeDir(v.ID)} {
			if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o700 {
				t.Errorf("%s: mode %v, %v; want 0700", p, st.Mode(), err)
			}
		}
	}
	// Destroy frees a uid; the next VM takes the lowest free one.
	if err := d.Destroy(ctx, a); err != nil {
		t.Fatal(err)
	}
	c := testVM("c")
	if err := d.Provision(ctx, c, base); err != nil {
		t.Fatal(err)
	}
	if got, err := dirOwner(l.VMDir(c.OwnerID, c.ID)); err != nil || got != ua {
		t.Errorf("c's directory owner %d (%v), want the freed uid %d", got, err, ua)
	}
}

// TestLaunchGivesOldDirItsOwnUID: a VM directory an older vmd gave to a
// shared user (or root) gets a uid of its own at the next launch.
func TestLaunchGivesOldDirItsOwnUID(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Fatal("needs root, to hand files to other uids")
	}
	base := tinyImage(t)
	l := vmtest.Layout(t)
	d := newDriver(t, l)
	ctx := context.Background()
	v := testVM("old")
	if err := d.Provision(ctx, v, base); err != nil {
		t.Fatal(err)
	}
	dir := l.VMDir(v.OwnerID, v.ID)
	disk := filepath.Join(dir, vm.DiskFile)
	for _, p := range []string{dir, disk} {
		if err := os.Lchown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(disk, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Launch(ctx, v); err != nil {
		t.Fatal(err)
	}
	uid, err := dirOwner(dir)
	if err != nil || !DefaultUIDs.contains(uid) {
		t.Fatalf("dir owner %d (%v), want one of %s", uid, err, DefaultUIDs)
	}
	st, err := os.Stat(disk)
	if err != nil || st.Sys().(*syscall.Stat_t).Uid != uid || st.Mode().Perm() != 0o600 {
		t.Fatalf("disk: %v %v, want 0600 owned by %d", st.Mode(), err, uid)
	}
}

func TestParseUIDRange(t *testing.T) {
	tests := []struct {
		in   string
		want UIDRange
		ok   bool
	}{
		{"200000-265535", UIDRange{200000, 65536}, true},
		{"5-5", UIDRange{5, 1}, true},
		{"0-10", UIDRange{}, false},
		{"10-5", UIDRange{}, false},
		{"10", UIDRange{}, false},
		{"a-b", UIDRange{}, false},
		{"2147483000-2147483648", UIDRange{}, false},
	}
	for _, tc := range tests {
		got, err := ParseUIDRange(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseUIDRange(%q) = %v, %v", tc.in, got, err)
		}
	}
	if r, err := ParseUIDRange(DefaultUIDs.String()); err != nil || r != DefaultUIDs {
		t.Errorf("default %s does not parse back: %v %v", DefaultUIDs, r, err)
	}
}

// TestCheckUnused refuses a range that holds an account (nobody is in
// every /etc/passwd).
func TestCheckUnused(t *testing.T) {
	if err := checkUnused(UIDRange{First: 65000, Count: 1000}); err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Fatalf("range with nobody: %v", err)
	}
	if err := checkUnused(DefaultUIDs); err != nil {
		t.Fatal(err)
	}
}
