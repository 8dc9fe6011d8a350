package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// TestShareLinks runs on both backends: links found by hash while
// unexpired, listed per VM oldest first, revoked by delete (not through
// another VM), unique hashes, and gone with their VM.
func TestShareLinks(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := context.Background()
		addUser(t, s, "u1", bigQuota)
		for _, v := range []store.VM{newVM("v1", "u1", "web", 1, 128, 1), newVM("v2", "u1", "db", 1, 128, 1)} {
			if err := s.CreateVM(ctx, v); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
		link := func(id, vm, hash string, created time.Time, ttl time.Duration) store.ShareLink {
			return store.ShareLink{ID: id, VMID: vm, OwnerID: "u1", Hash: hash, CreatedAt: created, ExpiresAt: created.Add(ttl)}
		}
		a := link("lnk_a", "v1", "ha", now, time.Hour)
		bl := link("lnk_b", "v1", "hb", now.Add(time.Second), time.Hour)
		c := link("lnk_c", "v2", "hc", now, time.Hour)
		short := link("lnk_s", "v1", "hs", now, time.Minute)
		for _, l := range []store.ShareLink{a, bl, c, short} {
			if err := s.CreateShareLink(ctx, l); err != nil {
				t.Fatal(err)
			}
		}
		mustErr(t, s.CreateShareLink(ctx, link("lnk_x", "v1", "ha", now, time.Hour)), store.ErrConflict, "same hash")
		mustErr(t, s.CreateShareLink(ctx, link("lnk_y", "nope", "hy", now, time.Hour)), store.ErrNotFound, "no such vm")

		got, err := s.GetShareLink(ctx, "hb", now)
		if err != nil || got != bl {
			t.Fatalf("get: %+v %v, want %+v", got, err, bl)
		}
		if _, err := s.GetShareLink(ctx, "hs", now.Add(time.Minute)); err == nil {
			t.Fatal("an expired link was found")
		} else {
			mustErr(t, err, store.ErrNotFound, "expired")
		}
		mustErr(t, func() error { _, err := s.GetShareLink(ctx, "zz", now); return err }(), store.ErrNotFound, "unknown hash")

		ids := func(vm string, at time.Time) []string {
			t.Helper()
			ls, err := s.ListShareLinks(ctx, vm, at)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, l := range ls {
				out = append(out, l.ID)
			}
			return out
		}
		if got := ids("v1", now); len(got) != 3 || got[0] != "lnk_a" || got[1] != "lnk_s" || got[2] != "lnk_b" {
			t.Fatalf("v1's links: %v", got)
		}
		if got := ids("v1", now.Add(2*time.Minute)); len(got) != 2 || got[0] != "lnk_a" || got[1] != "lnk_b" {
			t.Fatalf("v1's links once one expired: %v", got)
		}

		mustErr(t, s.DeleteShareLink(ctx, "v2", "lnk_a"), store.ErrNotFound, "revoked through another vm")
		if err := s.DeleteShareLink(ctx, "v1", "lnk_a"); err != nil {
			t.Fatal(err)
		}
		mustErr(t, s.DeleteShareLink(ctx, "v1", "lnk_a"), store.ErrNotFound, "revoked twice")
		mustErr(t, func() error { _, err := s.GetShareLink(ctx, "ha", now); return err }(), store.ErrNotFound, "revoked")

		if err := s.DeleteVM(ctx, "v2"); err != nil {
			t.Fatal(err)
		}
		mustErr(t, func() error { _, err := s.GetShareLink(ctx, "hc", now); return err }(), store.ErrNotFound, "link of a deleted vm")
	})
}
