package vm

import (
	"context"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, what, cond)
}

// A subscription that falls behind the one poller (its queue overflows)
// or starts behind it (resumes from an old id) reads the backlog itself:
// every change of its owner arrives once, in order, and no other owner's.
func TestFeedLagAndResume(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		ctx := context.Background()
		vms := map[string]store.VM{}
		for _, owner := range []string{"u_alice", "u_bob"} {
			vms[owner] = storedVM(t, st, owner, api.StatePending)
		}
		f := NewFeed(FeedConfig{Store: st, Poll: 5 * time.Millisecond})
		f.page, f.buffer = 16, 8 // a backlog of several pages, a queue that overflows soon
		alice := store.User{ID: "u_alice"}
		live, err := f.Subscribe(ctx, alice, false, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer live.Close()
		start := live.Start()
		states := []api.State{api.StateStarting, api.StateRunning}
		for i := range 60 {
			for _, owner := range []string{"u_alice", "u_bob"} {
				if _, err := st.SetState(ctx, vms[owner].ID, states[i%2], "test"); err != nil {
					t.Fatal(err)
				}
			}
		}
		waitUntil(t, "the queue overflows", live.overflow.Load)
		want, err := st.ListChanges(ctx, "u_alice", start, store.MaxChangesPerList)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) != 60 {
			t.Fatalf("%d changes of alice in the store", len(want))
		}
		read := func(s *Subscription, n int) []store.Change {
			var got []store.Change
			for len(got) < n {
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				cs, err := s.Next(rctx, nil)
				cancel()
				if err != nil {
					t.Fatalf("after %d changes: %v", len(got), err)
				}
				got = append(got, cs...)
			}
			return got
		}
		same := func(name string, got, want []store.Change) {
			t.Helper()
			if len(got) != len(want) {
				t.Fatalf("%s: %d changes, want %d", name, len(got), len(want))
			}
			for i := range got {
				if got[i].ID != want[i].ID || got[i].OwnerID != "u_alice" {
					t.Fatalf("%s: change %d is %d of %s, want %d", name, i, got[i].ID, got[i].OwnerID, want[i].ID)
				}
			}
		}
		same("overflowed", read(live, len(want)), want)
		// Resuming from the start while the poller runs ahead.
		old, err := f.Subscribe(ctx, alice, false, start)
		if err != nil {
			t.Fatal(err)
		}
		defer old.Close()
		same("resumed", read(old, len(want)), want)
		// Both are live again: the next change reaches both, once.
		if _, err := st.SetState(ctx, vms["u_alice"].ID, api.StateStopping, "test"); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*Subscription{live, old} {
			if cs := read(s, 1); len(cs) != 1 || cs[0].State != api.StateStopping {
				t.Fatalf("next change: %+v", cs)
			}
		}
	})
}
