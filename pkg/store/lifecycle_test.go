package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
)

// testLifecycle: expiry, idle stop and last activity round-trip on both
// backends; a touch never moves the activity back; TTL limits per user.
func testLifecycle(t *testing.T, s store.Store) {
	ctx := context.Background()
	addUser(t, s, "u1", bigQuota)
	exp := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)
	v := newVM("vm_l1", "u1", "ttl", 1, 64, 1)
	v.ExpiresAt, v.IdleStop = &exp, 90*time.Second
	if err := s.CreateVM(ctx, v); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetVM(ctx, "vm_l1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) || got.IdleStop != 90*time.Second || got.LastActiveAt != nil {
		t.Fatalf("created: expires %v idle %v active %v", got.ExpiresAt, got.IdleStop, got.LastActiveAt)
	}
	if a := got.ToAPI(); a.ExpiresAt == nil || a.IdleStop != "1m30s" {
		t.Fatalf("api: %+v", a)
	}
	if err := s.CreateVM(ctx, newVM("vm_l2", "u1", "plain", 1, 64, 1)); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.GetVM(ctx, "vm_l2"); p.ExpiresAt != nil || p.IdleStop != 0 || p.ToAPI().ExpiresAt != nil {
		t.Fatalf("plain vm has lifetimes: %+v", p)
	}

	later := exp.Add(time.Hour)
	if got, err = s.SetExpiry(ctx, "vm_l1", &later); err != nil || !got.ExpiresAt.Equal(later) {
		t.Fatalf("set expiry: %v %v", got.ExpiresAt, err)
	}
	if got, err = s.SetExpiry(ctx, "vm_l1", nil); err != nil || got.ExpiresAt != nil {
		t.Fatalf("clear expiry: %v %v", got.ExpiresAt, err)
	}
	mustErr(t, func() error { _, err := s.SetExpiry(ctx, "nope", &later); return err }(), store.ErrNotFound, "expiry of missing vm")

	t1 := time.Date(2030, 1, 1, 0, 0, 10, 0, time.UTC)
	if err := s.TouchVM(ctx, "vm_l1", t1); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchVM(ctx, "vm_l1", t1.Add(-5*time.Second)); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetVM(ctx, "vm_l1")
	if got.LastActiveAt == nil || !got.LastActiveAt.Equal(t1) {
		t.Fatalf("last active %v, want %v (never moved back)", got.LastActiveAt, t1)
	}

	// ExpireVM acts only on an expiry at or before now, once.
	soon := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
	if _, err := s.SetExpiry(ctx, "vm_l1", &soon); err != nil {
		t.Fatal(err)
	}
	if v, expired, err := s.ExpireVM(ctx, "vm_l1", soon.Add(-time.Second)); err != nil || expired || v.Desired != api.DesiredRunning {
		t.Fatalf("expire before the deadline: %v %v %s", expired, err, v.Desired)
	}
	if _, expired, err := s.ExpireVM(ctx, "vm_l2", soon); err != nil || expired {
		t.Fatalf("expire a vm without expiry: %v %v", expired, err)
	}
	if v, expired, err := s.ExpireVM(ctx, "vm_l1", soon); err != nil || !expired || v.Desired != api.DesiredDeleted {
		t.Fatalf("expire at the deadline: %v %v %s", expired, err, v.Desired)
	}
	if _, expired, err := s.ExpireVM(ctx, "vm_l1", soon.Add(time.Hour)); err != nil || expired {
		t.Fatalf("expired twice: %v %v", expired, err)
	}
	if _, _, err := s.ExpireVM(ctx, "nope", soon); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expire a missing vm: %v", err)
	}

	l, err := s.TTLLimits(ctx, "u1")
	if err != nil || l != (store.TTLLimits{}) {
		t.Fatalf("fresh limits %+v %v", l, err)
	}
	want := store.TTLLimits{Max: 2 * time.Hour, Default: 30 * time.Minute}
	if err := s.SetTTLLimits(ctx, "u1", want); err != nil {
		t.Fatal(err)
	}
	if l, err = s.TTLLimits(ctx, "u1"); err != nil || l != want {
		t.Fatalf("limits %+v %v, want %+v", l, err, want)
	}
	mustErr(t, s.SetTTLLimits(ctx, "nope", want), store.ErrNotFound, "limits of missing user")
	mustErr(t, func() error { _, err := s.TTLLimits(ctx, "nope"); return err }(), store.ErrNotFound, "limits of missing user")
}
