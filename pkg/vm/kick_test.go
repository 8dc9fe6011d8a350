package vm_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/queue"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
)

// recorder is a LocalKicker that remembers what it was told.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) Kick(id string)      { r.add("kick " + id) }
func (r *recorder) ForceStop(id string) { r.add("force-stop " + id) }
func (r *recorder) add(s string)        { r.mu.Lock(); r.calls = append(r.calls, s); r.mu.Unlock() }
func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

func TestQueueKickerRoutesToOwner(t *testing.T) {
	st := openStore(t)
	u := newUser(t, st)
	now := time.Now().UTC()
	for _, v := range []store.VM{
		{ID: vm.NewID(), OwnerID: u.ID, Name: "here", Template: "tiny", CPU: 1, MemoryMB: 128, DiskGB: 1, Node: "a"},
		{ID: vm.NewID(), OwnerID: u.ID, Name: "there", Template: "tiny", CPU: 1, MemoryMB: 128, DiskGB: 1, Node: "b"},
	} {
		v.State, v.Desired, v.CreatedAt, v.UpdatedAt = api.StatePending, api.DesiredRunning, now, now
		if err := st.CreateVM(context.Background(), v); err != nil {
			t.Fatal(err)
		}
	}
	here, _ := st.GetVMByName(context.Background(), u.ID, "here")
	there, _ := st.GetVMByName(context.Background(), u.ID, "there")

	q := queue.NewMemory(queue.Options{})
	t.Cleanup(func() { q.Close() })
	onA, onB := &recorder{}, &recorder{}
	a := &vm.QueueKicker{Store: st, Queue: q, Local: onA, Node: "a"}
	b := &vm.QueueKicker{Store: st, Queue: q, Local: onB, Node: "b"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = b.ConsumeJobs(ctx, "b-1") }()

	a.Kick(here.ID)
	a.Kick(there.ID)
	a.ForceStop(there.ID)
	if got := onA.got(); len(got) != 1 || got[0] != "kick "+here.ID {
		t.Fatalf("node a handled %v", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(onB.got()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := onB.got(); len(got) != 2 || got[0] != "kick "+there.ID || got[1] != "force-stop "+there.ID {
		t.Fatalf("node b handled %v", got)
	}
}
