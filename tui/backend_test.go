package tui

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
)

func TestPollEvents(t *testing.T) {
	web := api.VM{ID: "vm_1", Name: "web", State: api.StateProvisioning}
	db := api.VM{ID: "vm_2", Name: "db", State: api.StateStopped}
	running := web
	running.State = api.StateRunning
	listings := [][]api.VM{
		{web, db},
		{web, db},     // nothing moved
		{running, db}, // web is up
		{running},     // db is gone
	}
	var mu sync.Mutex
	n := 0
	list := func(context.Context) ([]api.VM, error) {
		mu.Lock()
		defer mu.Unlock()
		if n >= len(listings) {
			return nil, errors.New("server gone")
		}
		n++
		return listings[n-1], nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	changes, errs := PollEvents(ctx, list, 10, time.Millisecond)
	type seen struct {
		id    int64
		vm    string
		state api.State
	}
	var got []seen
	for c := range changes {
		got = append(got, seen{c.ID, c.VMID, c.State})
	}
	want := []seen{{11, "vm_1", api.StateProvisioning}, {12, "vm_2", api.StateStopped}, {13, "vm_1", api.StateRunning}, {14, "vm_2", StateDeleted}}
	if len(got) != len(want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("change %d: %v, want %v", i, got[i], want[i])
		}
	}
	if err := <-errs; err == nil || err.Error() != "poll vms: server gone" {
		t.Fatalf("stream error %v", err)
	}
}

func TestPollEventsStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	list := func(context.Context) ([]api.VM, error) { return []api.VM{{ID: "vm_1"}}, nil }
	changes, errs := PollEvents(ctx, list, 0, time.Millisecond)
	<-changes
	cancel()
	for range changes {
	}
	if err := <-errs; err != nil {
		t.Fatalf("error after cancel: %v", err)
	}
}
