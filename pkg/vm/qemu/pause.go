package qemu

import (
	"context"
	"fmt"

	"github.com/vmdhq/vmd/pkg/vm"
)

var _ vm.Pauser = (*Driver)(nil)

// Pause freezes the guest's CPUs (QMP stop). The process, its memory and
// the VNC server stay, so a console shows the frozen screen.
func (d *Driver) Pause(ctx context.Context, id string) error { return d.execute(ctx, id, "stop") }

// Resume lets a paused guest run again (QMP cont).
func (d *Driver) Resume(ctx context.Context, id string) error { return d.execute(ctx, id, "cont") }

func (d *Driver) execute(ctx context.Context, id, cmd string) error {
	g := d.get(id)
	if g == nil || !g.alive() {
		return fmt.Errorf("%s %s: no running guest", cmd, id)
	}
	m, err := g.monitor(ctx, d)
	if err != nil {
		return fmt.Errorf("%s %s: %w", cmd, id, err)
	}
	if err := m.Execute(ctx, cmd); err != nil {
		return fmt.Errorf("%s %s: %w", cmd, id, err)
	}
	return nil
}
