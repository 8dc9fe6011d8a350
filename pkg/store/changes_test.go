package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
)

// changeLine is a change as "vm:state/desired:message", for comparing feeds.
func changeLine(c store.Change) string {
	return fmt.Sprintf("%s:%s/%s:%s", c.VMName, c.State, c.Desired, c.Message)
}

func listChanges(t *testing.T, s store.Store, owner string, after int64, limit int) ([]store.Change, string) {
	t.Helper()
	cs, err := s.ListChanges(context.Background(), owner, after, limit)
	if err != nil {
		t.Fatalf("list changes of %q after %d: %v", owner, after, err)
	}
	lines := make([]string, len(cs))
	for i, c := range cs {
		lines[i] = changeLine(c)
	}
	return cs, strings.Join(lines, ",")
}

// testChanges follows two owners' VMs through every kind of write.
func testChanges(t *testing.T, s store.Store) {
	ctx := context.Background()
	addUser(t, s, "u1", bigQuota)
	addUser(t, s, "u2", bigQuota)
	for _, owner := range []string{"", "u1", "nobody"} {
		if id, err := s.LastChangeID(ctx, owner); err != nil || id != 0 {
			t.Fatalf("last change id of %q on an empty feed = %d, %v", owner, id, err)
		}
	}
	created := time.Now().UTC().Truncate(time.Microsecond)
	v1 := newVM("v1", "u1", "web", 1, 64, 1)
	v1.CreatedAt = created
	if err := s.CreateVM(ctx, v1); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateVM(ctx, newVM("v2", "u2", "db", 1, 64, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetState(ctx, "v1", api.StateRunning, "booted"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetDesired(ctx, "v1", api.DesiredDeleted); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteVM(ctx, "v1"); err != nil {
		t.Fatal(err)
	}
	// SetNode is bookkeeping, not a state change: no entry.
	if err := s.SetNode(ctx, "v2", "node-a"); err != nil {
		t.Fatal(err)
	}
	// A failed write leaves no entry either.
	if _, err := s.SetState(ctx, "v1", api.StateRunning, "too late"); err == nil {
		t.Fatal("set state of a deleted vm succeeded")
	}

	all, got := listChanges(t, s, "", 0, 0)
	want := "web:pending/running:queued,db:pending/running:queued,web:running/running:booted," +
		"web:running/deleted:booted,web:deleted/deleted:deleted"
	if got != want {
		t.Fatalf("all changes:\n got %s\nwant %s", got, want)
	}
	for i, c := range all {
		if i > 0 && c.ID <= all[i-1].ID {
			t.Errorf("change ids not increasing: %d after %d", c.ID, all[i-1].ID)
		}
		if c.Time.Location() != time.UTC || c.Time.IsZero() {
			t.Errorf("change %d time %v", c.ID, c.Time)
		}
	}
	if all[0].VMID != "v1" || all[0].OwnerID != "u1" || !all[0].Time.Equal(created) {
		t.Errorf("first change = %+v, want v1 of u1 at %v", all[0], created)
	}
	if a := all[4].ToAPI(); a.State != api.StateDeleted || a.VMID != "v1" || a.VMName != "web" || a.ID != all[4].ID {
		t.Errorf("deleted change as api = %+v", a)
	}

	cases := []struct {
		name  string
		owner string
		after int64
		limit int
		want  string
	}{
		{"one owner", "u1", 0, 0, "web:pending/running:queued,web:running/running:booted,web:running/deleted:booted,web:deleted/deleted:deleted"},
		{"other owner", "u2", 0, 0, "db:pending/running:queued"},
		{"no such owner", "nobody", 0, 0, ""},
		{"after an id", "", all[2].ID, 0, "web:running/deleted:booted,web:deleted/deleted:deleted"},
		{"owner after an id", "u2", all[1].ID, 0, ""},
		{"limit", "", 0, 2, "web:pending/running:queued,db:pending/running:queued"},
		{"limit after", "u1", all[0].ID, 1, "web:running/running:booted"},
		{"after the last", "", all[4].ID, 0, ""},
		{"limit above the maximum", "u2", 0, store.MaxChangesPerList + 1, "db:pending/running:queued"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, got := listChanges(t, s, c.owner, c.after, c.limit); got != c.want {
				t.Errorf("got %s\nwant %s", got, c.want)
			}
		})
	}

	lasts := []struct {
		owner string
		want  int64
	}{{"", all[4].ID}, {"u1", all[4].ID}, {"u2", all[1].ID}, {"nobody", 0}}
	for _, l := range lasts {
		if id, err := s.LastChangeID(ctx, l.owner); err != nil || id != l.want {
			t.Errorf("last change id of %q = %d, %v; want %d", l.owner, id, err, l.want)
		}
	}
}

// testChangesInCommitOrder has a reader follow the feed while writers race:
// every change must be seen exactly once, which fails if an id is
// committed after a higher one the reader has already passed.
func testChangesInCommitOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	addUser(t, s, "u1", bigQuota)
	const vms, rounds = 4, 15
	for i := range vms {
		if err := s.CreateVM(ctx, newVM(fmt.Sprintf("v%d", i), "u1", fmt.Sprintf("n%d", i), 1, 64, 1)); err != nil {
			t.Fatal(err)
		}
	}
	start, err := s.LastChangeID(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errc := make(chan error, vms*rounds)
	for i := range vms {
		wg.Go(func() {
			for r := range rounds {
				if _, err := s.SetState(ctx, fmt.Sprintf("v%d", i), api.StateRunning, fmt.Sprint(r)); err != nil {
					errc <- err
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := map[int64]bool{}
	after := start
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		cs, err := s.ListChanges(ctx, "u1", after, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if seen[c.ID] {
				t.Fatalf("change %d seen twice", c.ID)
			}
			seen[c.ID] = true
			after = c.ID
		}
		if finished && len(cs) == 0 {
			break
		}
	}
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if len(seen) != vms*rounds {
		t.Fatalf("reader saw %d changes, want %d", len(seen), vms*rounds)
	}
}
