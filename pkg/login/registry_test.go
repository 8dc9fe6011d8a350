package login_test

import (
	"context"
	"github.com/vmdhq/vmd/internal/testutil"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/login"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

func TestRegistry(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		ctx := context.Background()
		u := store.User{ID: "u_ada", Email: "ada@example.com", PasswordHash: "x", Verified: true, Quota: api.Quota{VMs: 1}}
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		for _, id := range []string{"s_1", "s_2", "s_3"} {
			if err := st.CreateSession(ctx, store.Session{ID: id, UserID: u.ID, Kind: "cli", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		r := login.New(login.Config{Store: st, Check: 50 * time.Millisecond})
		var ended [4]atomic.Int32
		add := func(sess string, i int) func() { return r.Add(sess, u.ID, func() { ended[i].Add(1) }) }
		add("s_1", 0)
		add("s_2", 1)
		forget := add("s_2", 2)
		add("s_3", 3)

		forget() // closed on its own: not ended later
		r.EndUser(u.ID, "s_1")
		if ended[1].Load() != 1 || ended[2].Load() != 0 || ended[3].Load() != 1 || ended[0].Load() != 0 {
			t.Fatalf("after EndUser(except s_1): %d %d %d %d", ended[0].Load(), ended[1].Load(), ended[2].Load(), ended[3].Load())
		}
		// s_1 revoked elsewhere: the check ends it without being told.
		if err := r.Alive(ctx, "s_1"); err != nil {
			t.Fatal(err)
		}
		if err := st.RevokeSession(ctx, "s_1", time.Now()); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 5*time.Second, "a revoked session's things ended by the check",
			func() bool { return ended[0].Load() != 0 })
		if err := r.Alive(ctx, "s_1"); err != login.ErrEnded {
			t.Fatalf("alive after revoke: %v", err)
		}
		if r.Open("s_1") != 0 || ended[0].Load() != 1 {
			t.Fatalf("s_1 open %d, ended %d times", r.Open("s_1"), ended[0].Load())
		}
	})
}
