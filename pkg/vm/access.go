package vm

import (
	"fmt"

	"github.com/vmdhq/vmd/pkg/store"
)

// The authorization rule of VMs, in one place: the API (through the
// service), the console (token issue and WebSocket), the change feed and
// cluster forwarding all ask these two functions and nothing else.

// Authorize says whether caller may touch v: its owner and admins may.
// Anyone else gets not-found, never forbidden, so VM ids do not leak.
func Authorize(caller store.User, v store.VM) error {
	if caller.ID == "" || (v.OwnerID != caller.ID && !caller.Admin) {
		return fmt.Errorf("vm %s: %w", v.ID, ErrNotFound)
	}
	return nil
}

// AuthorizeAll says whether caller may see every user's VMs and changes
// (?all=true): admins only.
func AuthorizeAll(caller store.User) error {
	if !caller.Admin {
		return fmt.Errorf("every user's vms: %w", ErrForbidden)
	}
	return nil
}
