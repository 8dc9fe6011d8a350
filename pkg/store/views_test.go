package store_test

import (
	"context"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// TestViews checks, on every backend, that the one-statement views read
// what the separate reads do: the VM, its events and its snapshots.
func TestViews(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) { testViews(t, b.Open(t)) })
}

func testViews(t *testing.T, s store.Store) {
	ctx := context.Background()
	addUser(t, s, "u1", bigQuota)
	addUser(t, s, "u2", bigQuota)
	for _, v := range []store.VM{newVM("v1", "u1", "web", 1, 128, 2), newVM("v2", "u1", "db", 1, 128, 2),
		newVM("v3", "u2", "web", 1, 128, 2)} {
		if err := s.CreateVM(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	// Text JSON must escape, and a guest's addresses.
	if _, err := s.SetState(ctx, "v1", api.StateRunning, `said "hi" \ é ☃`+"\n\ttab"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetGuest(ctx, "v1", true, []string{"10.0.0.2", "fd00::2"}, "guest ready"); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	for i, sn := range []store.Snapshot{{VMID: "v1", Name: "b", SizeGB: 2, Memory: true, CreatedAt: at},
		{VMID: "v1", Name: "a", SizeGB: 1, CreatedAt: at.Add(time.Microsecond)},
		{VMID: "v3", Name: "x", SizeGB: 1, CreatedAt: at}} {
		if err := s.CreateSnapshot(ctx, sn); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := s.FinishSnapshot(ctx, "v1", "b", "memory"); err != nil {
				t.Fatal(err)
			}
		}
	}

	// want is the view as the separate reads give it.
	want := func(id string) store.VMView {
		t.Helper()
		v, err := s.GetVM(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := s.ListEvents(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		sns, err := s.ListSnapshots(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return store.VMView{VM: v, Events: evs, Snapshots: sns}
	}
	w1 := want("v1")
	if len(w1.Events) != 3 || len(w1.Snapshots) != 2 || w1.Snapshots[0].Name != "b" || !w1.Snapshots[1].Pending ||
		len(w1.Addresses) != 2 {
		t.Fatalf("the separate reads of v1 are not what the test made: %+v", w1)
	}
	cases := []struct {
		name string
		k    store.VMKey
		want string
	}{
		{"by id", store.VMKey{ID: "v1"}, "v1"},
		{"by name", store.VMKey{OwnerID: "u1", Name: "web"}, "v1"},
		{"by name, other owner", store.VMKey{OwnerID: "u2", Name: "web"}, "v3"},
		{"no snapshots", store.VMKey{ID: "v2"}, "v2"},
	}
	for _, c := range cases {
		got, err := s.GetVMView(ctx, c.k)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		w := want(c.want)
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("%s:\n got %+v\nwant %+v", c.name, got, w)
		}
		for _, e := range got.Events {
			if e.Time.Location() != time.UTC {
				t.Fatalf("%s: event time %v not UTC", c.name, e.Time)
			}
		}
	}
	for _, k := range []store.VMKey{{ID: "nope"}, {OwnerID: "u2", Name: "db"}, {OwnerID: "nobody", Name: "web"}} {
		_, err := s.GetVMView(ctx, k)
		mustErr(t, err, store.ErrNotFound, "view of "+k.String())
	}

	for _, owner := range []string{"u1", "u2", ""} {
		vms, err := s.ListVMs(ctx, owner)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.ListVMViews(ctx, owner)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(vms) || len(vms) == 0 {
			t.Fatalf("owner %q: %d views, %d vms", owner, len(got), len(vms))
		}
		for i, v := range vms {
			sns, err := s.ListSnapshots(ctx, v.ID)
			if err != nil {
				t.Fatal(err)
			}
			if w := (store.VMView{VM: v, Snapshots: sns}); !reflect.DeepEqual(got[i], w) {
				t.Fatalf("owner %q, vm %d:\n got %+v\nwant %+v", owner, i, got[i], w)
			}
		}
	}
	if got, err := s.ListVMViews(ctx, "nobody"); err != nil || len(got) != 0 {
		t.Fatalf("views of an owner without VMs: %+v %v", got, err)
	}
}

// BenchmarkViews compares the views with the separate reads they replace
// (10 VMs of one owner, 3 events each, no snapshots), on every backend.
func BenchmarkViews(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			s := be.Open(b)
			u := store.User{ID: "u1", Email: "u1@example.com", PasswordHash: "h", Quota: bigQuota, CreatedAt: time.Now().UTC()}
			if err := s.CreateUser(ctx, u); err != nil {
				b.Fatal(err)
			}
			for i := range 10 {
				id := "v" + string(rune('0'+i))
				if err := s.CreateVM(ctx, newVM(id, "u1", "n"+id, 1, 1, 1)); err != nil {
					b.Fatal(err)
				}
				for _, st := range []api.State{api.StateProvisioning, api.StateRunning} {
					if _, err := s.SetState(ctx, id, st, "now "+string(st)); err != nil {
						b.Fatal(err)
					}
				}
			}
			run := func(name string, f func() error) {
				b.Run(name, func(b *testing.B) {
					b.ReportAllocs()
					cpu0 := cpuTime(b)
					for b.Loop() {
						if err := f(); err != nil {
							b.Fatal(err)
						}
					}
					// This process's CPU (not PostgreSQL's): steadier than ns/op on a shared machine.
					b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
				})
			}
			run("get/separate", func() error {
				v, err := s.GetVMByName(ctx, "u1", "nv3")
				if err == nil {
					_, err = s.ListEvents(ctx, v.ID)
				}
				if err == nil {
					_, err = s.ListSnapshots(ctx, v.ID)
				}
				return err
			})
			run("get/view", func() error { _, err := s.GetVMView(ctx, store.VMKey{OwnerID: "u1", Name: "nv3"}); return err })
			run("list/separate", func() error {
				_, err := s.ListVMs(ctx, "u1")
				if err == nil {
					_, err = s.ListOwnerSnapshots(ctx, "u1")
				}
				return err
			})
			run("list/view", func() error { _, err := s.ListVMViews(ctx, "u1"); return err })
		})
	}
}

// cpuTime is the user and system CPU time this process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
