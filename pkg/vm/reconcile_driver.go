package vm

import (
	"context"

	"github.com/vmdhq/vmd/pkg/store"
)

// Driver runs this node's guests (qemu.Driver). The reconciler decides what
// should happen; the driver knows how. Every method is safe for concurrent
// use on different VMs; the reconciler never calls two at once for one VM.
type Driver interface {
	Provisioner
	// Launch starts v's process and returns once its monitor answers.
	Launch(ctx context.Context, v store.VM) error
	// Adopt takes over a guest left running by an earlier vmd, trusting its
	// pid file only when that process's command line names that pid file.
	// It reports whether a guest was found.
	Adopt(ctx context.Context, v store.VM) (bool, error)
	// Alive reports whether the driver knows a live process for the VM.
	Alive(id string) bool
	// Status is the guest's run state as its monitor reports it ("running", …).
	Status(ctx context.Context, id string) (string, error)
	// Stop asks the guest to power down, waits for it unless force is closed
	// (nil: never), then quits and finally kills the process.
	Stop(ctx context.Context, id string, force <-chan struct{}) error
	// Subscribe sets the function told about guest events (one at a time).
	Subscribe(fn func(GuestEvent))
}

// GuestEvent is something a guest did that may change its state.
type GuestEvent struct {
	ID   string
	Kind string // EventExited or a QMP event name: SHUTDOWN, STOP, RESET, POWERDOWN, RESUME
	// Guest is set for a SHUTDOWN the guest asked for itself (poweroff inside it).
	Guest   bool
	Message string
}

// EventExited is the Kind of a GuestEvent sent when a guest's process is gone.
const EventExited = "EXITED"
