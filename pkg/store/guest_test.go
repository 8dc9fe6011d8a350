package store_test

import (
	"context"
	"slices"
	"testing"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
)

// testGuest: readiness and addresses are recorded with a change that says
// ready, survive a running→running write and go when the VM leaves running.
func testGuest(t *testing.T, s store.Store) {
	ctx := context.Background()
	addUser(t, s, "u1", bigQuota)
	if err := s.CreateVM(ctx, newVM("v1", "u1", "web", 1, 64, 1)); err != nil {
		t.Fatal(err)
	}
	v, err := s.GetVM(ctx, "v1")
	if err != nil || v.Ready || len(v.Addresses) != 0 || v.ToAPI().Addresses == nil {
		t.Fatalf("new vm: ready %v, addresses %#v, api %#v, %v", v.Ready, v.Addresses, v.ToAPI().Addresses, err)
	}
	if _, err := s.SetState(ctx, "v1", api.StateRunning, "running"); err != nil {
		t.Fatal(err)
	}
	last, _ := s.LastChangeID(ctx, "u1")
	addrs := []string{"10.0.2.15/24", "fec0::5054:ff:fe12:3456/64"}
	if v, err = s.SetGuest(ctx, "v1", true, addrs, "ready: guest agent answers"); err != nil {
		t.Fatal(err)
	}
	if !v.Ready || !slices.Equal(v.Addresses, addrs) {
		t.Fatalf("after SetGuest: ready %v, addresses %v", v.Ready, v.Addresses)
	}
	cs, lines := listChanges(t, s, "u1", last, 0)
	if len(cs) != 1 || !cs[0].Ready || lines != "web:running/running:ready: guest agent answers" {
		t.Fatalf("changes after SetGuest = %q (ready %v)", lines, len(cs) == 1 && cs[0].Ready)
	}
	// No message: the record changes, the feed does not.
	if _, err := s.SetGuest(ctx, "v1", true, addrs[:1], ""); err != nil {
		t.Fatal(err)
	}
	if cs, _ := listChanges(t, s, "u1", last, 0); len(cs) != 1 {
		t.Fatalf("a silent SetGuest added %d changes", len(cs)-1)
	}
	if v, err = s.SetState(ctx, "v1", api.StateRunning, "guest reset"); err != nil || !v.Ready {
		t.Fatalf("running→running lost readiness: %v, %v", v.Ready, err)
	}
	if v, err = s.SetState(ctx, "v1", api.StateStopping, "stopping"); err != nil {
		t.Fatal(err)
	}
	if v.Ready || len(v.Addresses) != 0 {
		t.Fatalf("stopping vm: ready %v, addresses %v", v.Ready, v.Addresses)
	}
	if v, _ = s.GetVM(ctx, "v1"); v.Ready || len(v.Addresses) != 0 {
		t.Fatalf("stored stopping vm: ready %v, addresses %v", v.Ready, v.Addresses)
	}
	if _, err := s.SetGuest(ctx, "nope", true, nil, "x"); err == nil {
		t.Fatal("SetGuest of a missing vm succeeded")
	}
}
