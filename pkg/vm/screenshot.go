package vm

import (
	"context"
	"errors"
	"fmt"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
)

// ErrUnsupported: this node's driver cannot do what was asked.
var ErrUnsupported = errors.New("not supported by this node's driver")

// Screenshotter takes a PNG of a running guest's screen (qemu.Driver).
type Screenshotter interface {
	Screenshot(ctx context.Context, id string) ([]byte, error)
}

// Screenshot returns a PNG of the screen of one of the caller's running
// VMs. It must run on the VM's own node (the server forwards it there).
func (s *Service) Screenshot(ctx context.Context, caller store.User, ref string) ([]byte, error) {
	v, err := s.lookup(ctx, caller, ref)
	if err != nil {
		return nil, err
	}
	if v.State != api.StateRunning {
		return nil, fmt.Errorf("screenshot of %s (it is %s): %w", v.Name, v.State, ErrNotRunning)
	}
	if s.screens == nil {
		return nil, fmt.Errorf("screenshot of %s: %w", v.Name, ErrUnsupported)
	}
	return s.screens.Screenshot(ctx, v.ID)
}
