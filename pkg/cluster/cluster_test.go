package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm"
)

func TestChoose(t *testing.T) {
	c := func(name string, cpus, usedCPUs, mem, usedMem int) candidate {
		return candidate{name: name, cap: Capacity{cpus, mem, 100}, used: Capacity{usedCPUs, usedMem, 0}}
	}
	one := Demand{CPUs: 1, MemoryMB: 256, DiskGB: 1}
	for _, tc := range []struct {
		name  string
		cands []candidate
		d     Demand
		want  string // "" for no room
	}{
		{"none", nil, one, ""},
		{"ties by name", []candidate{c("b", 4, 0, 1024, 0), c("a", 4, 0, 1024, 0)}, one, "a"},
		{"least vcpu share", []candidate{c("a", 4, 2, 4096, 0), c("b", 8, 2, 4096, 0)}, one, "b"},
		{"share, not count", []candidate{c("a", 2, 1, 4096, 0), c("b", 8, 3, 4096, 0)}, one, "b"},
		{"full cpu skipped", []candidate{c("a", 2, 2, 4096, 0), c("b", 8, 7, 4096, 0)}, one, "b"},
		{"full memory skipped", []candidate{c("a", 8, 0, 1024, 900), c("b", 8, 4, 1024, 0)}, one, "b"},
		{"too big everywhere", []candidate{c("a", 8, 0, 1024, 0)}, Demand{CPUs: 1, MemoryMB: 2048, DiskGB: 1}, ""},
		{"disk", []candidate{c("a", 8, 0, 1024, 0)}, Demand{CPUs: 1, MemoryMB: 128, DiskGB: 101}, ""},
		{"exactly fits", []candidate{c("a", 1, 0, 256, 0)}, one, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := choose(tc.cands, tc.d)
			if got != tc.want || ok != (tc.want != "") {
				t.Fatalf("choose = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

func TestRegistry(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := context.Background()
		now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		clock := func() time.Time { return now }
		secret := []byte(strings.Repeat("k", 32))
		regs := map[string]*Registry{}
		for _, name := range []string{"n1", "n2", "n3"} {
			r, err := New(Config{Store: s, Name: name, AdvertiseURL: "http://" + name, Secret: secret, Now: clock,
				Capacity: Capacity{CPUs: 2, MemoryMB: 1024, DiskGB: 10}})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Register(ctx); err != nil {
				t.Fatal(err)
			}
			regs[name] = r
		}
		r1 := regs["n1"]
		if err := s.CreateUser(ctx, store.User{ID: "u", Email: "u@example.com", Quota: api.Quota{VMs: 99, CPUs: 99, MemoryMB: 99999, DiskGB: 999}}); err != nil {
			t.Fatal(err)
		}
		// create places a VM as r1 would, in the store's transaction.
		create := func(id string) (string, error) {
			v, err := s.CreateVMPlaced(ctx, store.VM{ID: id, OwnerID: "u", Name: id, Template: "tiny", CPU: 1, MemoryMB: 128,
				DiskGB: 1, State: api.StatePending, Desired: api.DesiredRunning},
				func(nodes []store.Node, usage map[string]api.Quota) (string, error) {
					return r1.Choose(nodes, usage, api.Quota{VMs: 1, CPUs: 1, MemoryMB: 128, DiskGB: 1}, "")
				})
			return v.Node, err
		}
		// Placed one after another, six VMs spread two a node.
		count := map[string]int{}
		for i := range 6 {
			node, err := create("vm_" + string(rune('a'+i)))
			if err != nil {
				t.Fatal(err)
			}
			count[node]++
		}
		if count["n1"] != 2 || count["n2"] != 2 || count["n3"] != 2 {
			t.Fatalf("placement = %v, want two a node", count)
		}
		var ce *vm.CapacityError
		if _, err := create("vm_x"); !errors.Is(err, ErrNoCapacity) || !errors.As(err, &ce) || ce.Nodes != 3 {
			t.Fatalf("seventh vCPU: %v, want ErrNoCapacity among 3 nodes", err)
		}
		if _, err := s.GetVM(ctx, "vm_x"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("refused vm recorded: %v", err)
		}

		// n3 stops heartbeating; n1 and n2 go on. n2 drains.
		now = now.Add(11 * time.Second)
		for _, n := range []string{"n1", "n2"} {
			if err := s.Heartbeat(ctx, n, now); err != nil {
				t.Fatal(err)
			}
		}
		r1.invalidate()
		if down, _, err := r1.NodeDown(ctx, "n1"); err != nil || down {
			t.Fatalf("n1 down = %v, %v", down, err)
		}
		down, since, err := r1.NodeDown(ctx, "n3")
		if err != nil || !down || !since.Equal(now.Add(-11*time.Second)) {
			t.Fatalf("n3 down = %v since %v, %v", down, since, err)
		}
		if down, since, _ := r1.NodeDown(ctx, "never"); !down || !since.IsZero() {
			t.Fatalf("unregistered node down = %v since %v", down, since)
		}
		if err := s.SetDraining(ctx, "n2", true); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteVM(ctx, "vm_a"); err != nil { // n1 gets room again
			t.Fatal(err)
		}
		if err := s.DeleteVM(ctx, "vm_c"); err != nil { // ... and n3, which is down
			t.Fatal(err)
		}
		if err := s.DeleteVM(ctx, "vm_b"); err != nil { // ... and n2, which drains
			t.Fatal(err)
		}
		node, err := create("vm_g")
		if err != nil || node != "n1" {
			t.Fatalf("place with n2 draining and n3 down = %q, %v", node, err)
		}
	})
}

func TestPlacementHeader(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	mk := func(name, secret string) *Registry {
		r, err := New(Config{Store: struct{ store.Store }{}, Name: name, AdvertiseURL: "http://x", Secret: []byte(secret),
			Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b, evil := mk("a", "secret-secret-secret-secret-1234"), mk("b", "secret-secret-secret-secret-1234"), mk("b", "another-secret-another-secret-12")
	h := a.SignPlacement("b")
	for _, tc := range []struct {
		name string
		r    *Registry
		h    string
		want bool
	}{
		{"signed for b", b, h, true},
		{"not for a", a, h, false},
		{"other secret", evil, h, false},
		{"forged node", b, strings.Replace(a.SignPlacement("a"), "a;", "b;", 1), false},
		{"garbage", b, "b", false},
		{"empty", b, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.VerifyPlacement(tc.h); got != tc.want {
				t.Fatalf("verify %q = %v, want %v", tc.h, got, tc.want)
			}
		})
	}
	now = now.Add(2 * time.Minute)
	if b.VerifyPlacement(h) {
		t.Fatal("a stale placement header was accepted")
	}
}

func TestHostCapacity(t *testing.T) {
	c, err := HostCapacity(t.TempDir(), 4)
	if err != nil {
		t.Fatal(err)
	}
	if c.CPUs < 4 || c.MemoryMB < 64 || c.DiskGB < 1 {
		t.Fatalf("capacity = %+v", c)
	}
}
