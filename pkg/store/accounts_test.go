package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// TestDeleteUser: an account with VMs is refused; without, it goes with its
// sessions and tokens, and another user's tokens stay.
func TestDeleteUser(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := context.Background()
		ada := addUser(t, s, "usr_ada", bigQuota)
		bob := addUser(t, s, "usr_bob", bigQuota)
		exp := time.Now().Add(time.Hour).UTC()
		for _, tk := range []store.Token{
			{Hash: "h1", Kind: "reset", UserID: ada.ID, ExpiresAt: exp},
			{Hash: "h2", Kind: "reset", UserID: ada.ID, ExpiresAt: exp},
			{Hash: "h3", Kind: "verify", UserID: ada.ID, ExpiresAt: exp},
			{Hash: "h4", Kind: "reset", UserID: bob.ID, ExpiresAt: exp},
		} {
			if err := s.CreateToken(ctx, tk); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreateSession(ctx, store.Session{ID: "ses_ada", UserID: ada.ID, Kind: "cli", ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}

		if err := s.DeleteUserTokens(ctx, ada.ID, "reset"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			kind, hash string
			left       bool
		}{{"reset", "h1", false}, {"reset", "h2", false}, {"verify", "h3", true}, {"reset", "h4", true}} {
			_, err := s.ConsumeToken(ctx, c.kind, c.hash, time.Now())
			if left := err == nil; left != c.left {
				t.Fatalf("token %s left = %v (%v), want %v", c.hash, left, err, c.left)
			}
		}

		if err := s.CreateVM(ctx, newVM("vm_1", ada.ID, "web", 1, 128, 1)); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteUser(ctx, ada.ID); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("delete a user with a VM = %v, want conflict", err)
		}
		if err := s.DeleteVM(ctx, "vm_1"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteUser(ctx, ada.ID); err != nil {
			t.Fatalf("delete user: %v", err)
		}
		if _, err := s.GetUser(ctx, ada.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted user still found: %v", err)
		}
		if _, err := s.GetSession(ctx, "ses_ada"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted user's session still found: %v", err)
		}
		if err := s.DeleteUser(ctx, ada.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete twice = %v, want not found", err)
		}
		if _, err := s.GetUser(ctx, bob.ID); err != nil {
			t.Fatalf("other user: %v", err)
		}
	})
}
