package vm

import (
	"context"
	"slices"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
)

// guestEvents records what a running guest's events say: a reset makes it
// not ready, EventReady ready, EventAddresses its addresses. The driver
// learns these off the reconcile loop; here they are only written down, so
// every node's API shows them. Readiness belongs to a running VM: events
// that come while it is still starting wait for the next pass.
func (r *Reconciler) guestEvents(ctx context.Context, v *store.VM, evs []GuestEvent) {
	var later []GuestEvent
	for _, e := range evs {
		switch e.Kind {
		case "RESET":
			if v.State == api.StateRunning {
				r.setState(ctx, v, api.StateRunning, "guest reset")
				if v.Ready {
					r.setGuest(ctx, v, false, nil, "not ready: the guest reset")
				}
			}
		case EventReady:
			if v.State != api.StateRunning {
				later = append(later, e)
			} else if !v.Ready {
				r.setGuest(ctx, v, true, v.Addresses, e.Message)
			}
		case EventAddresses:
			if v.State != api.StateRunning {
				later = append(later, e)
			} else if !slices.Equal(v.Addresses, e.Addresses) {
				r.setGuest(ctx, v, v.Ready, e.Addresses, "")
			}
		}
	}
	if len(later) > 0 {
		r.mu.Lock()
		r.events[v.ID] = append(later, r.events[v.ID]...)
		r.mu.Unlock()
	}
}

// spec is SpecOf(v) with the template's ready line, for a launch or adoption.
func (r *Reconciler) spec(v store.VM) GuestSpec {
	s := SpecOf(v)
	if r.cfg.ReadyLine != nil {
		if l := r.cfg.ReadyLine(v.Template); l != "" {
			s.ReadyLine = l
		}
	}
	return s
}

func (r *Reconciler) setGuest(ctx context.Context, v *store.VM, ready bool, addrs []string, msg string) {
	nv, err := r.cfg.Store.SetGuest(ctx, v.ID, ready, addrs, msg)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Error("reconcile: set guest", "vm", v.ID, "err", err)
		}
		return
	}
	*v = nv
}
