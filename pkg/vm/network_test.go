package vm_test

import (
	"context"
	"errors"
	"testing"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm"
)

// TestCreateNetwork: a VM's network defaults to nat, none is kept, anything
// else is a validation error naming the field; the store keeps it on both
// backends and the spec the driver gets carries it.
func TestCreateNetwork(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		ctx := context.Background()
		if err := st.CreateUser(ctx, store.User{ID: "u1", Email: "u1@example.com",
			Quota: api.Quota{VMs: 9, CPUs: 9, MemoryMB: 9999, DiskGB: 99}}); err != nil {
			t.Fatal(err)
		}
		svc := vm.NewService(vm.ServiceConfig{Store: st, Templates: templates{}, Node: "n1"})
		for _, tc := range []struct{ name, network, want string }{
			{"dflt", "", api.NetworkNAT},
			{"nat", api.NetworkNAT, api.NetworkNAT},
			{"none", api.NetworkNone, api.NetworkNone},
		} {
			got, err := svc.Create(ctx, "u1", api.CreateVMRequest{Name: tc.name, Template: "tiny", MemoryMB: 128, Network: tc.network})
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if got.Network != tc.want || got.Addresses == nil || len(got.Addresses) != 0 {
				t.Errorf("%s: network %q addresses %#v, want %q and []", tc.name, got.Network, got.Addresses, tc.want)
			}
			rec, err := st.GetVM(ctx, got.ID)
			if err != nil || rec.Network != tc.want || vm.SpecOf(rec).Network != tc.want {
				t.Errorf("%s: stored network %q, spec %q (%v), want %q", tc.name, rec.Network, vm.SpecOf(rec).Network, err, tc.want)
			}
		}
		_, err := svc.Create(ctx, "u1", api.CreateVMRequest{Name: "bad", Template: "tiny", MemoryMB: 128, Network: "bridge"})
		var ve *vm.ValidationError
		if !errors.As(err, &ve) || ve.Field != "network" {
			t.Fatalf("network bridge: %v, want a validation error on network", err)
		}
	})
}
