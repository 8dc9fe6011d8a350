package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// TestSSHKeys runs on both backends: a user's keys, their uniqueness and
// cap, another user's keys kept apart, and the keys gone with the account.
func TestSSHKeys(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := context.Background()
		addUser(t, s, "u1", bigQuota)
		addUser(t, s, "u2", bigQuota)
		k := func(user, name, fp string) store.SSHKey {
			return store.SSHKey{UserID: user, Name: name, Key: "ssh-ed25519 " + fp, Fingerprint: "SHA256:" + fp}
		}
		if err := s.AddSSHKey(ctx, k("u1", "laptop", "a"), 3); err != nil {
			t.Fatal(err)
		}
		mustErr(t, s.AddSSHKey(ctx, k("u1", "laptop", "b"), 3), store.ErrSSHKeyNameTaken, "same name")
		mustErr(t, s.AddSSHKey(ctx, k("u1", "desk", "a"), 3), store.ErrSSHKeyDuplicate, "same fingerprint")
		mustErr(t, s.AddSSHKey(ctx, k("u1", "desk", "a"), 3), store.ErrConflict, "duplicate is a conflict")
		// The same key and name for another user is that user's own.
		if err := s.AddSSHKey(ctx, k("u2", "laptop", "a"), 3); err != nil {
			t.Fatalf("another user's same key: %v", err)
		}
		for i := range 2 {
			if err := s.AddSSHKey(ctx, k("u1", fmt.Sprint("k", i), fmt.Sprint("f", i)), 3); err != nil {
				t.Fatal(err)
			}
		}
		mustErr(t, s.AddSSHKey(ctx, k("u1", "fourth", "z"), 3), store.ErrTooManySSHKeys, "over the cap")
		mustErr(t, s.AddSSHKey(ctx, k("nobody", "x", "x"), 3), store.ErrNotFound, "no such user")

		ks, err := s.ListSSHKeys(ctx, "u1")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, k := range ks {
			names = append(names, k.Name)
			if k.UserID != "u1" || k.CreatedAt.IsZero() {
				t.Errorf("listed %+v", k)
			}
		}
		if !slices.Equal(names, []string{"laptop", "k0", "k1"}) {
			t.Fatalf("u1's keys = %v", names)
		}
		if err := s.DeleteSSHKey(ctx, "u1", "k0"); err != nil {
			t.Fatal(err)
		}
		mustErr(t, s.DeleteSSHKey(ctx, "u1", "k0"), store.ErrNotFound, "deleted twice")
		mustErr(t, s.DeleteSSHKey(ctx, "u2", "k1"), store.ErrNotFound, "another user's key")

		if err := s.DeleteUser(ctx, "u2"); err != nil {
			t.Fatal(err)
		}
		if ks, err := s.ListSSHKeys(ctx, "u2"); err != nil || len(ks) != 0 {
			t.Fatalf("keys after the account went: %v, %v", ks, err)
		}
		// A re-created account of that id starts with no keys and may add the same one.
		addUser(t, s, "u2", bigQuota)
		if err := s.AddSSHKey(ctx, k("u2", "laptop", "a"), 3); err != nil {
			t.Fatalf("re-add after account deletion: %v", err)
		}
	})
}

// TestVMKeys: a VM's authorized keys are kept as created, its host keys as set.
func TestVMKeys(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := context.Background()
		addUser(t, s, "u1", bigQuota)
		v := newVM("vm_1", "u1", "web", 1, 64, 1)
		v.SSHKeys = []string{"ssh-ed25519 AAAA1", "ecdsa-sha2-nistp256 AAAA2"}
		if err := s.CreateVM(ctx, v); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetVM(ctx, "vm_1")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.SSHKeys, v.SSHKeys) || got.HostKeys != nil {
			t.Fatalf("keys = %q host %q", got.SSHKeys, got.HostKeys)
		}
		if api := got.ToAPI(); api.SSHHostKeys == nil || len(api.SSHHostKeys) != 0 {
			t.Fatalf("ssh_host_keys before reported = %#v, want []", api.SSHHostKeys)
		}
		host := []string{"ssh-ed25519 AAAAh"}
		if err := s.SetHostKeys(ctx, "vm_1", host); err != nil {
			t.Fatal(err)
		}
		vs, err := s.ListVMs(ctx, "u1")
		if err != nil || len(vs) != 1 || !slices.Equal(vs[0].HostKeys, host) || !slices.Equal(vs[0].ToAPI().SSHHostKeys, host) {
			t.Fatalf("after SetHostKeys: %+v, %v", vs, err)
		}
		mustErr(t, s.SetHostKeys(ctx, "vm_nope", host), store.ErrNotFound, "host keys of a missing vm")
	})
}
