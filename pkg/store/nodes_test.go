package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

func TestNodes(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := context.Background()
		t0 := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
		for _, n := range []store.Node{
			{Name: "b", AdvertiseURL: "http://127.0.0.3:8080", CPUs: 2, MemoryMB: 4096, DiskGB: 100, StartedAt: t0},
			{Name: "a", AdvertiseURL: "http://127.0.0.2:8080", CPUs: 4, MemoryMB: 8192, DiskGB: 200, StartedAt: t0},
		} {
			if err := s.UpsertNode(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SetDraining(ctx, "b", true); err != nil {
			t.Fatal(err)
		}
		// A restart updates capacity and times but keeps the drain.
		t1 := t0.Add(time.Hour)
		if err := s.UpsertNode(ctx, store.Node{Name: "b", AdvertiseURL: "http://127.0.0.3:9090", CPUs: 3,
			MemoryMB: 4096, DiskGB: 100, StartedAt: t1}); err != nil {
			t.Fatal(err)
		}
		if err := s.Heartbeat(ctx, "a", t1.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		mustErr(t, s.Heartbeat(ctx, "nope", t1), store.ErrNotFound, "heartbeat of unknown node")
		mustErr(t, s.SetDraining(ctx, "nope", true), store.ErrNotFound, "drain unknown node")
		_, err := s.GetNode(ctx, "nope")
		mustErr(t, err, store.ErrNotFound, "get unknown node")

		ns, err := s.ListNodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []store.Node{
			{Name: "a", AdvertiseURL: "http://127.0.0.2:8080", CPUs: 4, MemoryMB: 8192, DiskGB: 200,
				HeartbeatAt: t1.Add(time.Second), StartedAt: t0},
			{Name: "b", AdvertiseURL: "http://127.0.0.3:9090", CPUs: 3, MemoryMB: 4096, DiskGB: 100, Draining: true,
				HeartbeatAt: t1, StartedAt: t1},
		}
		if len(ns) != len(want) {
			t.Fatalf("nodes = %+v, want %+v", ns, want)
		}
		for i := range want {
			if ns[i] != want[i] {
				t.Errorf("node %d = %+v, want %+v", i, ns[i], want[i])
			}
		}
		if err := s.SetDraining(ctx, "b", false); err != nil {
			t.Fatal(err)
		}
		if n, err := s.GetNode(ctx, "b"); err != nil || n.Draining {
			t.Fatalf("undrained node b = %+v, %v", n, err)
		}

		addUser(t, s, "u1", bigQuota)
		for _, v := range []struct {
			id, node       string
			cpu, mem, disk int
		}{{"vm1", "a", 1, 256, 1}, {"vm2", "a", 2, 512, 3}, {"vm3", "b", 1, 128, 2}} {
			vm := newVM(v.id, "u1", v.id, v.cpu, v.mem, v.disk)
			vm.Node = v.node
			if err := s.CreateVM(ctx, vm); err != nil {
				t.Fatal(err)
			}
		}
		u, err := s.NodeUsage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantU := map[string]api.Quota{"a": {VMs: 2, CPUs: 3, MemoryMB: 768, DiskGB: 4}, "b": {VMs: 1, CPUs: 1, MemoryMB: 128, DiskGB: 2}}
		if len(u) != len(wantU) || u["a"] != wantU["a"] || u["b"] != wantU["b"] {
			t.Fatalf("usage = %+v, want %+v", u, wantU)
		}
	})
}
