package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// TestSnapshots runs the snapshot records' suite on every backend.
func TestSnapshots(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		t.Run("records and quota", func(t *testing.T) { testSnapshotRecords(t, b.Open(t)) })
		t.Run("vm delete frees them", func(t *testing.T) { testSnapshotsGoWithVM(t, b.Open(t)) })
		t.Run("retention", func(t *testing.T) { testSnapshotKeep(t, b.Open(t)) })
	})
}

func testSnapshotRecords(t *testing.T, s store.Store) {
	ctx := context.Background()
	addUser(t, s, "u1", api.Quota{VMs: 5, CPUs: 5, MemoryMB: 5000, DiskGB: 10})
	if err := s.CreateVM(ctx, newVM("v1", "u1", "web", 1, 128, 6)); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	if err := s.CreateSnapshot(ctx, store.Snapshot{VMID: "v1", Name: "a", SizeGB: 3, Memory: true, CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
	if u := usage(t, s, "u1"); u.DiskGB != 9 {
		t.Fatalf("disk usage after a 3 GB snapshot of a 6 GB VM: %d", u.DiskGB)
	}
	err := s.CreateSnapshot(ctx, store.Snapshot{VMID: "v1", Name: "a", SizeGB: 1})
	mustErr(t, err, store.ErrConflict, "same name twice")
	err = s.CreateSnapshot(ctx, store.Snapshot{VMID: "v1", Name: "b", SizeGB: 2})
	mustErr(t, err, store.ErrQuotaExceeded, "past the disk quota")
	if want := "disk: 2 GB asked, 1 GB left of 10"; !strings.Contains(err.Error(), want) {
		t.Fatalf("quota error %q does not say %q", err, want)
	}
	var qe *store.QuotaError
	if !errors.As(err, &qe) {
		t.Fatalf("quota error %v is not a *QuotaError", err)
	}
	err = s.CreateSnapshot(ctx, store.Snapshot{VMID: "nope", Name: "a", SizeGB: 1})
	mustErr(t, err, store.ErrNotFound, "snapshot of a missing vm")
	if u := usage(t, s, "u1"); u.DiskGB != 9 {
		t.Fatalf("refused snapshots changed the usage: %d", u.DiskGB)
	}
	if err := s.FinishSnapshot(ctx, "v1", "a", "memory"); err != nil {
		t.Fatal(err)
	}
	mustErr(t, s.FinishSnapshot(ctx, "v1", "zz", "crash"), store.ErrNotFound, "finish a missing snapshot")
	if err := s.CreateSnapshot(ctx, store.Snapshot{VMID: "v1", Name: "b", SizeGB: 1, CreatedAt: at.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListSnapshots(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Snapshot{
		{VMID: "v1", Name: "a", SizeGB: 3, Memory: true, Consistency: "memory", CreatedAt: at},
		{VMID: "v1", Name: "b", SizeGB: 1, Pending: true, CreatedAt: at.Add(time.Second)},
	}
	if len(got) != len(want) {
		t.Fatalf("list: %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("snapshot %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if all, err := s.ListOwnerSnapshots(ctx, "u1"); err != nil || len(all) != 2 || all[0] != want[0] {
		t.Fatalf("owner's snapshots: %+v %v", all, err)
	}
	if none, err := s.ListOwnerSnapshots(ctx, "u2"); err != nil || len(none) != 0 {
		t.Fatalf("another owner's snapshots: %+v %v", none, err)
	}
	if err := s.DeleteSnapshot(ctx, "v1", "a"); err != nil {
		t.Fatal(err)
	}
	mustErr(t, s.DeleteSnapshot(ctx, "v1", "a"), store.ErrNotFound, "delete twice")
	if u := usage(t, s, "u1"); u.DiskGB != 7 {
		t.Fatalf("disk usage after deleting the 3 GB snapshot: %d", u.DiskGB)
	}
	// The recount counts snapshots: nothing to fix.
	fixes, err := s.RecountUsage(ctx)
	if err != nil || len(fixes) != 0 {
		t.Fatalf("recount with snapshots: %+v %v", fixes, err)
	}
}

func testSnapshotsGoWithVM(t *testing.T, s store.Store) {
	ctx := context.Background()
	addUser(t, s, "u1", bigQuota)
	if err := s.CreateVM(ctx, newVM("v1", "u1", "web", 1, 128, 2)); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if err := s.CreateSnapshot(ctx, store.Snapshot{VMID: "v1", Name: n, SizeGB: 4}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteVM(ctx, "v1"); err != nil {
		t.Fatal(err)
	}
	if u := usage(t, s, "u1"); u != (api.Quota{}) {
		t.Fatalf("usage after deleting a VM with snapshots: %+v", u)
	}
	if got, err := s.ListSnapshots(ctx, "v1"); err != nil || len(got) != 0 {
		t.Fatalf("snapshots of a deleted vm: %+v %v", got, err)
	}
}

func testSnapshotKeep(t *testing.T, s store.Store) {
	ctx := context.Background()
	addUser(t, s, "u1", bigQuota)
	if err := s.CreateVM(ctx, newVM("v1", "u1", "web", 1, 128, 2)); err != nil {
		t.Fatal(err)
	}
	if k, err := s.SnapshotKeep(ctx, "v1"); err != nil || k != 0 {
		t.Fatalf("keep before set: %d %v", k, err)
	}
	for _, k := range []int{3, 1} {
		if err := s.SetSnapshotKeep(ctx, "v1", k); err != nil {
			t.Fatal(err)
		}
		if got, err := s.SnapshotKeep(ctx, "v1"); err != nil || got != k {
			t.Fatalf("keep: got %d %v, want %d", got, err, k)
		}
	}
	mustErr(t, s.SetSnapshotKeep(ctx, "nope", 2), store.ErrNotFound, "keep of a missing vm")
}
