package vm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/qemu"
)

func TestSnapshotSize(t *testing.T) {
	const gb = 1 << 30
	cases := []struct {
		disk int64
		mem  int
		want int
	}{
		{0, 0, 1},              // never free
		{1 << 20, 0, 1},        // a fresh overlay
		{gb, 0, 1},             // exactly one GB
		{gb + 1, 0, 2},         // rounded up
		{gb - 256<<20, 256, 1}, // memory fills the GB
		{gb - 256<<20, 257, 2},
		{10 * gb, 2048, 12},
	}
	for _, c := range cases {
		if got := vm.SnapshotSize(c.disk, c.mem); got != c.want {
			t.Errorf("SnapshotSize(%d, %d) = %d, want %d", c.disk, c.mem, got, c.want)
		}
	}
}

// freezer adds a guest agent's freeze to the real driver: the snapshot of
// a running guest is taken between its FsFreeze and FsThaw.
type freezer struct {
	*qemu.Driver
	fail           atomic.Bool
	freezes, thaws atomic.Int32
}

func (f *freezer) FsFreeze(context.Context, string) (int, error) {
	f.freezes.Add(1)
	if f.fail.Load() {
		return 0, errors.New("no agent")
	}
	return 1, nil
}

func (f *freezer) FsThaw(context.Context, string) (int, error) { f.thaws.Add(1); return 1, nil }

// TestSnapshotRules checks a running guest's snapshots against a real QEMU:
// frozen through the agent, crash-consistent without it (thawed either way),
// names, duplicates, missing snapshots, transitional states and retention.
func TestSnapshotRules(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	l := testLayout(t)
	var fz *freezer
	n := startNodeWith(t, st, l, tinyImage(t), vm.RestartAlways, func(d *qemu.Driver) vm.Driver {
		fz = &freezer{Driver: d}
		return fz
	})
	u := newUser(t, st)
	ctx := context.Background()
	v := create(t, n, u, "snap")
	waitState(t, st, v.ID, api.StateRunning, 30*time.Second)

	sn, err := n.svc.CreateSnapshot(ctx, u, "snap", api.CreateSnapshotRequest{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if sn.Consistency != api.ConsistencyFrozen || fz.freezes.Load() != 1 || fz.thaws.Load() != 1 {
		t.Fatalf("with an agent: %+v, %d freezes, %d thaws", sn, fz.freezes.Load(), fz.thaws.Load())
	}
	fz.fail.Store(true)
	if sn, err = n.svc.CreateSnapshot(ctx, u, "snap", api.CreateSnapshotRequest{Name: "b"}); err != nil {
		t.Fatal(err)
	}
	if sn.Consistency != api.ConsistencyCrash || fz.thaws.Load() != 2 {
		t.Fatalf("with a failing agent: %+v, %d thaws", sn, fz.thaws.Load())
	}

	for _, bad := range []string{"", "Bad_Name", "-a", strings.Repeat("a", 64), "a.b"} {
		_, err := n.svc.CreateSnapshot(ctx, u, "snap", api.CreateSnapshotRequest{Name: bad})
		var ve *vm.ValidationError
		if !errors.As(err, &ve) || ve.Field != "name" {
			t.Errorf("snapshot name %q: %v", bad, err)
		}
	}
	if _, err := n.svc.CreateSnapshot(ctx, u, "snap", api.CreateSnapshotRequest{Name: "a"}); !errors.Is(err, vm.ErrConflict) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := n.svc.RestoreSnapshot(ctx, u, "snap", "zz"); !errors.Is(err, vm.ErrNotFound) || !strings.Contains(err.Error(), "no snapshot named zz") {
		t.Fatalf("restore of a missing snapshot: %v", err)
	}
	if err := n.svc.DeleteSnapshot(ctx, u, "snap", "zz"); !errors.Is(err, vm.ErrNotFound) {
		t.Fatalf("delete of a missing snapshot: %v", err)
	}

	// A VM between states: every snapshot operation is refused. The
	// reconciler leaves a VM this process is provisioning alone.
	if _, err := st.SetState(ctx, v.ID, api.StateProvisioning, "test"); err != nil {
		t.Fatal(err)
	}
	_, cerr := n.svc.CreateSnapshot(ctx, u, "snap", api.CreateSnapshotRequest{Name: "c"})
	_, rerr := n.svc.RestoreSnapshot(ctx, u, "snap", "a")
	derr := n.svc.DeleteSnapshot(ctx, u, "snap", "a")
	wantOp := map[string]string{"create": "snapshot", "restore": "restore", "delete": "delete a snapshot of"}
	for what, err := range map[string]error{"create": cerr, "restore": rerr, "delete": derr} {
		var sc *vm.StateConflictError
		if !errors.As(err, &sc) || !errors.Is(err, vm.ErrConflict) || sc.Op != wantOp[what] || sc.State != api.StateProvisioning {
			t.Errorf("%s while provisioning: %v", what, err)
		}
	}
	if _, err := st.SetState(ctx, v.ID, api.StateRunning, "test"); err != nil {
		t.Fatal(err)
	}

	// Retention: keep 2 prunes the oldest once a third is taken.
	keep := 2
	if _, err := n.svc.CreateSnapshot(ctx, u, "snap", api.CreateSnapshotRequest{Name: "c", Keep: &keep}); err != nil {
		t.Fatal(err)
	}
	got, err := n.svc.ListSnapshots(ctx, u, "snap")
	if err != nil {
		t.Fatal(err)
	}
	if names := fmt.Sprint(snapNames(got)); names != "[b c]" {
		t.Fatalf("after keep 2: %s", names)
	}
	rec, err := st.GetVM(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	disk, err := n.drv.DiskSnapshots(ctx, vm.SpecOf(rec))
	if err != nil || fmt.Sprint(disk) != "[b c]" {
		t.Fatalf("disk snapshots after keep 2: %v %v", disk, err)
	}
	usage, err := st.GetUser(ctx, u.ID)
	if err != nil || usage.Usage.DiskGB != 1+2 {
		t.Fatalf("disk usage with two 1 GB snapshots: %+v %v", usage.Usage, err)
	}

	// A clone of the running VM's current disk goes through a temporary
	// snapshot, which does not stay.
	cl, err := n.svc.Create(ctx, u.ID, api.CreateVMRequest{Name: "clone", From: "snap"})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, st, cl.ID, api.StateRunning, 30*time.Second)
	if disk, err = n.drv.DiskSnapshots(ctx, vm.SpecOf(rec)); err != nil || fmt.Sprint(disk) != "[b c]" {
		t.Fatalf("source's disk snapshots after a clone: %v %v", disk, err)
	}
	crec, err := st.GetVM(ctx, cl.ID)
	if err != nil {
		t.Fatal(err)
	}
	if disk, err = n.drv.DiskSnapshots(ctx, vm.SpecOf(crec)); err != nil || len(disk) != 0 {
		t.Fatalf("clone's disk snapshots: %v %v", disk, err)
	}
}

func snapNames(sns []api.Snapshot) []string {
	var out []string
	for _, s := range sns {
		out = append(out, s.Name)
	}
	return out
}

// TestCloneAdmission checks what a create with "from" takes from its
// source and refuses, on a records-only service (no driver).
func TestCloneAdmission(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	svc := vm.NewService(vm.ServiceConfig{Store: st, Templates: templates{"/nonexistent"}, Node: "n1"})
	u := newUser(t, st)
	ctx := context.Background()
	src, err := svc.Create(ctx, u.ID, api.CreateVMRequest{Name: "src", Template: "tiny", CPU: 2, MemoryMB: 512, DiskGB: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateSnapshot(ctx, store.Snapshot{VMID: src.ID, Name: "made", SizeGB: 1}); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishSnapshot(ctx, src.ID, "made", api.ConsistencyStopped); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateSnapshot(ctx, store.Snapshot{VMID: src.ID, Name: "half", SizeGB: 1}); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name  string
		req   api.CreateVMRequest
		field string
	}{
		{"no such vm", api.CreateVMRequest{Name: "c1", From: "nope"}, "from"},
		{"bad syntax", api.CreateVMRequest{Name: "c1", From: "src@Bad_Snap"}, "from"},
		{"missing snapshot", api.CreateVMRequest{Name: "c1", From: "src@nope"}, "from"},
		{"pending snapshot", api.CreateVMRequest{Name: "c1", From: "src@half"}, "from"},
		{"other template", api.CreateVMRequest{Name: "c1", From: "src", Template: "debian"}, "template"},
		{"smaller disk", api.CreateVMRequest{Name: "c1", From: "src", DiskGB: 2}, "disk_gb"},
		{"bad name", api.CreateVMRequest{Name: "C_1", From: "src"}, "name"},
	}
	for _, c := range bad {
		_, err := svc.Create(ctx, u.ID, c.req)
		var ve *vm.ValidationError
		if !errors.As(err, &ve) || ve.Field != c.field {
			t.Errorf("%s: %v, want a validation error on %s", c.name, err, c.field)
		}
	}
	c, err := svc.Create(ctx, u.ID, api.CreateVMRequest{Name: "copy", From: "src@made"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Template != "tiny" || c.CPU != 2 || c.MemoryMB != 512 || c.DiskGB != 3 {
		t.Fatalf("clone did not take its source's template and sizes: %+v", c)
	}
	got, err := st.GetUser(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Admitted like any create: two VMs of 3 GB and the two snapshot records.
	if got.Usage != (api.Quota{VMs: 2, CPUs: 4, MemoryMB: 1024, DiskGB: 3 + 3 + 2}) {
		t.Fatalf("usage after the clone: %+v", got.Usage)
	}
}
