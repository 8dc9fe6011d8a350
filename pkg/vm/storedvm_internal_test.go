package vm

import (
	"context"
	"testing"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
)

// storedVM writes a user (owner, quota for one small VM) and its VM "web"
// in state straight to st: the internal tests that need rows, not a guest.
func storedVM(t *testing.T, st store.Store, owner string, state api.State) store.VM {
	t.Helper()
	ctx := context.Background()
	u := store.User{ID: owner, Email: owner + "@example.com", PasswordHash: "x", Verified: true,
		Quota: api.Quota{VMs: 1, CPUs: 1, MemoryMB: 512, DiskGB: 10}}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	v := store.VM{ID: NewID(), OwnerID: owner, Name: "web", Template: "tiny", CPU: 1, MemoryMB: 128, DiskGB: 1,
		State: state, Desired: api.DesiredRunning, Node: "test"}
	if err := st.CreateVM(ctx, v); err != nil {
		t.Fatal(err)
	}
	return v
}
