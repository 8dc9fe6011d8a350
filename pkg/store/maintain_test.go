package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
)

// testRecountUsage: counters that drifted from the VM records are set
// back to what the records hold, and only those are reported.
func testRecountUsage(t *testing.T, s store.Store) {
	ctx := context.Background()
	addUser(t, s, "u1", bigQuota)
	addUser(t, s, "u2", bigQuota)
	for _, v := range []store.VM{newVM("v1", "u1", "a", 2, 512, 5), newVM("v2", "u1", "b", 1, 64, 1), newVM("v3", "u2", "c", 1, 64, 1)} {
		if err := s.CreateVM(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	if fixes, err := s.RecountUsage(ctx); err != nil || len(fixes) != 0 {
		t.Fatalf("recount of true counters: %+v, %v", fixes, err)
	}
	if err := store.Exec(s, `UPDATE users SET used_vms = 7, used_cpus = 0, used_disk_gb = 100 WHERE id = $1`, "u1"); err != nil {
		t.Fatal(err)
	}
	fixes, err := s.RecountUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := store.UsageFix{UserID: "u1", Was: api.Quota{VMs: 7, CPUs: 0, MemoryMB: 576, DiskGB: 100},
		Now: api.Quota{VMs: 2, CPUs: 3, MemoryMB: 576, DiskGB: 6}}
	if len(fixes) != 1 || fixes[0] != want {
		t.Fatalf("fixes = %+v, want [%+v]", fixes, want)
	}
	if got := usage(t, s, "u1"); got != want.Now {
		t.Fatalf("usage after recount = %+v", got)
	}
	if got := usage(t, s, "u2"); got != (api.Quota{VMs: 1, CPUs: 1, MemoryMB: 64, DiskGB: 1}) {
		t.Fatalf("u2 usage changed: %+v", got)
	}
	// Fixed counters admit as they should: u1 has room for its quota again.
	if err := s.CreateVM(ctx, newVM("v4", "u1", "d", 1, 64, 1)); err != nil {
		t.Fatal(err)
	}
}

// testPruneChanges: entries older than the cut go, the newest always
// stays, and a reader resuming from an ID inside the window sees the same
// feed as before.
func testPruneChanges(t *testing.T, s store.Store) {
	ctx := context.Background()
	addUser(t, s, "u1", bigQuota)
	old := time.Now().Add(-10 * 24 * time.Hour).UTC()
	for i, name := range []string{"a", "b"} {
		v := newVM("v"+name, "u1", name, 1, 64, 1)
		v.CreatedAt = old.Add(time.Duration(i) * time.Minute)
		if err := s.CreateVM(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	oldLast, err := s.LastChangeID(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	cut := time.Now().Add(-7 * 24 * time.Hour)
	// Only old entries: the newest of them stays, so IDs never go back.
	if n, err := s.PruneChanges(ctx, cut); err != nil || n != 1 {
		t.Fatalf("prune of old entries only: %d, %v; want 1", n, err)
	}
	if last, _ := s.LastChangeID(ctx, ""); last != oldLast {
		t.Fatalf("last change id %d after prune, was %d", last, oldLast)
	}
	if _, err := s.SetState(ctx, "va", api.StateStarting, "recent"); err != nil {
		t.Fatal(err)
	}
	_, before := listChanges(t, s, "u1", oldLast, 0)
	if n, err := s.PruneChanges(ctx, cut); err != nil || n != 1 {
		t.Fatalf("prune: %d, %v; want 1", n, err)
	}
	if _, after := listChanges(t, s, "u1", oldLast, 0); after != before || after == "" {
		t.Fatalf("feed after %d: %q after pruning, %q before", oldLast, after, before)
	}
	if _, all := listChanges(t, s, "u1", 0, 0); all != before {
		t.Fatalf("whole feed after pruning = %q, want only the recent %q", all, before)
	}
	if err := s.DeleteVM(ctx, "vb"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneChanges(ctx, cut); err != nil || n != 0 {
		t.Fatalf("prune with nothing old: %d, %v", n, err)
	}
}
