// Package tui is vmctl's interactive dashboard: a live table of the caller's
// VMs fed by vmd's change feed, quota bars, a create form and single-key
// actions. It is a bubbletea program whose Update is pure; every call to the
// server happens in a tea.Cmd that returns a typed message.
package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
)

// Backend is what the dashboard needs from vmd; ClientBackend is the real one.
type Backend interface {
	Me(ctx context.Context) (*api.User, error)
	ListVMs(ctx context.Context, all bool) ([]api.VM, error)
	Templates(ctx context.Context) ([]api.Template, error)
	CreateVM(ctx context.Context, req api.CreateVMRequest) (*api.VM, error)
	StartVM(ctx context.Context, idOrName string) (*api.VM, error)
	StopVM(ctx context.Context, idOrName string, force bool) (*api.VM, error)
	DeleteVM(ctx context.Context, idOrName string) (*api.VM, error)
	Console(ctx context.Context, idOrName string) (*api.ConsoleResponse, error)
	// GetVM and Logs feed the detail view (detail.go).
	GetVM(ctx context.Context, idOrName string) (*api.VM, error)
	Logs(ctx context.Context, idOrName string, tail int, follow bool) (io.ReadCloser, error)
	// Events streams changes with an ID above after (client.FromNow: from
	// now on). It returns once the stream is positioned, so a listing made
	// afterwards misses nothing. The changes channel is closed when the
	// stream ends; the error channel then holds why (nothing when ctx ended).
	Events(ctx context.Context, after int64) (<-chan Change, <-chan error)
}

// StateDeleted is the state of a Change whose VM is gone.
const StateDeleted = api.StateDeleted

// Change is one entry of vmd's change feed: a VM's new state.
type Change = api.Change

// ClientBackend is a Backend over the API client.
type ClientBackend struct {
	*client.Client
	// All lists every user's VMs (admins only).
	All bool
	// PollInterval is how often Events lists the VMs when the server has
	// no change feed; zero means 2s.
	PollInterval time.Duration
}

// Events follows vmd's change feed. It connects before it returns, so a
// listing made after it misses no change; after is the last change ID seen,
// or client.FromNow. A server without the feed (404) is polled instead.
func (b ClientBackend) Events(ctx context.Context, after int64) (<-chan Change, <-chan error) {
	s, err := b.OpenEvents(ctx, after, b.All)
	var apiErr *client.APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
		list := func(ctx context.Context) ([]api.VM, error) { return b.ListVMs(ctx, b.All) }
		return PollEvents(ctx, list, max(after, 0), b.PollInterval)
	}
	out := make(chan Change)
	errs := make(chan error, 1)
	if err != nil {
		errs <- err
		close(out)
		close(errs)
		return out, errs
	}
	go func() {
		defer s.Close()
		for c := range s.Changes() {
			select {
			case out <- c:
			case <-ctx.Done():
			}
		}
		if err := s.Err(); err != nil && ctx.Err() == nil {
			errs <- err
		}
		close(out)
		close(errs)
	}()
	return out, errs
}

// PollEvents turns repeated calls of list into a change feed. The first
// listing reports every VM, so a subscriber that listed earlier misses
// nothing; later ones report VMs whose state, desired state or message moved,
// and a VM that vanished as StateDeleted. IDs count up from after.
func PollEvents(ctx context.Context, list func(context.Context) ([]api.VM, error), after int64, interval time.Duration) (<-chan Change, <-chan error) {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	changes := make(chan Change)
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		defer close(changes)
		id := after
		var prev map[string]api.VM
		send := func(c Change) bool {
			id++
			c.ID = id
			select {
			case changes <- c:
				return true
			case <-ctx.Done():
				return false
			}
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			vms, err := list(ctx)
			if err != nil {
				if ctx.Err() == nil {
					errs <- fmt.Errorf("poll vms: %w", err)
				}
				return
			}
			now := time.Now()
			cur := make(map[string]api.VM, len(vms))
			for _, vm := range vms {
				cur[vm.ID] = vm
				old, seen := prev[vm.ID]
				if seen && old.State == vm.State && old.DesiredState == vm.DesiredState && old.Message == vm.Message {
					continue
				}
				at := vm.UpdatedAt
				if at.IsZero() {
					at = now
				}
				if !send(Change{VMID: vm.ID, VMName: vm.Name, State: vm.State, DesiredState: vm.DesiredState, Message: vm.Message, Time: at}) {
					return
				}
			}
			for vid, old := range prev {
				if _, ok := cur[vid]; !ok {
					if !send(Change{VMID: vid, VMName: old.Name, State: StateDeleted, DesiredState: api.DesiredDeleted, Time: now}) {
						return
					}
				}
			}
			prev = cur
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return changes, errs
}
