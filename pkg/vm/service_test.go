package vm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/cluster"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm"
)

// TestConcurrentCreatesNeverOvercommit: many creates at once, by owners
// with quota to spare, against a node with room for exactly three; three
// are placed and the others are told no node has room. Each owner is
// different, so nothing but the placement itself serialises them.
func TestConcurrentCreatesNeverOvercommit(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		ctx := context.Background()
		const room, tries = 3, 24
		reg, err := cluster.New(cluster.Config{Store: st, Name: "n1", AdvertiseURL: "http://n1", Secret: []byte(strings.Repeat("k", 32)),
			Capacity: cluster.Capacity{CPUs: room * 2, MemoryMB: 1 << 20, DiskGB: 1000}})
		if err != nil {
			t.Fatal(err)
		}
		if err := reg.Register(ctx); err != nil {
			t.Fatal(err)
		}
		svc := vm.NewService(vm.ServiceConfig{Store: st, Templates: templates{}, Node: "n1", Placement: reg})
		owners := make([]string, tries)
		for i := range owners {
			owners[i] = fmt.Sprintf("u%02d", i)
			if err := st.CreateUser(ctx, store.User{ID: owners[i], Email: owners[i] + "@example.com",
				Quota: api.Quota{VMs: 9, CPUs: 9, MemoryMB: 9999, DiskGB: 99}}); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, tries)
		start := make(chan struct{})
		for i := range tries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = svc.Create(ctx, owners[i], api.CreateVMRequest{Name: "web", Template: "tiny", CPU: 2, MemoryMB: 128})
			}()
		}
		close(start)
		wg.Wait()
		ok := 0
		for i, err := range errs {
			var ce *vm.CapacityError
			switch {
			case err == nil:
				ok++
			case errors.As(err, &ce) && errors.Is(err, vm.ErrNoCapacity):
			default:
				t.Errorf("create %d: %v", i, err)
			}
		}
		usage, err := st.NodeUsage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ok != room || usage["n1"].CPUs != room*2 {
			t.Fatalf("%d of %d creates placed, n1 holds %d vCPUs of %d; want exactly %d placed", ok, tries, usage["n1"].CPUs, room*2, room)
		}
		// The refused owners' usage went back to nothing.
		for _, o := range owners {
			u, err := st.GetUser(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			if u.Usage != (api.Quota{}) && u.Usage != (api.Quota{VMs: 1, CPUs: 2, MemoryMB: 128, DiskGB: api.DefaultDiskGB}) {
				t.Errorf("owner %s usage %+v", o, u.Usage)
			}
		}
	})
}

// TestCreatePlacedElsewhere: with this node draining, Create names the
// node placement picked and records nothing; CreateHere on that node
// creates it, and refuses when its own room is gone.
func TestCreatePlacedElsewhere(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		ctx := context.Background()
		secret := []byte(strings.Repeat("k", 32))
		svcs := map[string]*vm.Service{}
		for _, n := range []string{"a", "b"} {
			reg, err := cluster.New(cluster.Config{Store: st, Name: n, AdvertiseURL: "http://" + n, Secret: secret,
				Capacity: cluster.Capacity{CPUs: 2, MemoryMB: 4096, DiskGB: 100}, Now: time.Now})
			if err != nil {
				t.Fatal(err)
			}
			if err := reg.Register(ctx); err != nil {
				t.Fatal(err)
			}
			svcs[n] = vm.NewService(vm.ServiceConfig{Store: st, Templates: templates{}, Node: n, Placement: reg})
		}
		if err := st.CreateUser(ctx, store.User{ID: "u", Email: "u@example.com", Quota: api.Quota{VMs: 9, CPUs: 9, MemoryMB: 9999, DiskGB: 99}}); err != nil {
			t.Fatal(err)
		}
		if err := st.SetDraining(ctx, "a", true); err != nil {
			t.Fatal(err)
		}
		req := api.CreateVMRequest{Name: "web", Template: "tiny", CPU: 2, MemoryMB: 128}
		var ee *vm.ElsewhereError
		if _, err := svcs["a"].Create(ctx, "u", req); !errors.As(err, &ee) || ee.Node != "b" {
			t.Fatalf("create on a draining node: %v, want ElsewhereError{b}", err)
		}
		if u, _ := st.GetUser(ctx, "u"); u.Usage != (api.Quota{}) {
			t.Fatalf("usage after a create placed elsewhere: %+v", u.Usage)
		}
		v, err := svcs["b"].CreateHere(ctx, "u", req)
		if err != nil || v.Node != "b" {
			t.Fatalf("create here on b: %+v, %v", v, err)
		}
		req.Name = "db"
		if _, err := svcs["b"].CreateHere(ctx, "u", req); !errors.Is(err, vm.ErrNoCapacity) {
			t.Fatalf("create here on a full b: %v, want ErrNoCapacity", err)
		}
		// A placement on a (draining) is not honoured either.
		if _, err := svcs["a"].CreateHere(ctx, "u", req); !errors.Is(err, vm.ErrNoCapacity) {
			t.Fatalf("create here on a draining a: %v, want ErrNoCapacity", err)
		}
	})
}
