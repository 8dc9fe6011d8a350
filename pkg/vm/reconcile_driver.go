package vm

import (
	"context"
	"errors"

	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm/qga"
)

// Driver runs this node's guests (qemu.Driver). The reconciler decides what
// should happen; the driver knows how. Every method is safe for concurrent
// use on different VMs; the reconciler never calls two at once for one VM.
//
// A driver is told about a VM through a GuestSpec, never the store's row:
// the record's bookkeeping (states, quota, node) is none of its business.
type Driver interface {
	// Provision creates the VM's directory, its overlay on basePath and its seed.
	Provision(ctx context.Context, s GuestSpec, basePath string) error
	// Destroy stops any process of the VM and removes every file it had.
	Destroy(ctx context.Context, s GuestSpec) error
	// Launch starts the VM's process and returns once its monitor answers.
	Launch(ctx context.Context, s GuestSpec) error
	// Adopt takes over a guest left running by an earlier vmd, trusting its
	// pid file only when that process's command line names that pid file.
	// It reports whether a guest was found.
	Adopt(ctx context.Context, s GuestSpec) (bool, error)
	// Alive reports whether the driver knows a live process for the VM.
	Alive(id string) bool
	// Exit says how the VM's last process ended, once Alive is false; ok is
	// false when the driver knows of no ended process for it.
	Exit(id string) (e GuestExit, ok bool)
	// Status is the guest's run state as its monitor reports it ("running", …).
	Status(ctx context.Context, id string) (string, error)
	// Stop asks the guest to power down, waits for it unless force is closed
	// (nil: never), then quits and finally kills the process.
	Stop(ctx context.Context, id string, force <-chan struct{}) error
	// Subscribe sets the function told about guest events (one at a time).
	Subscribe(fn func(GuestEvent))
}

// GuestSpec is what a driver needs to know of one guest. The reconciler
// builds it from the VM's record (SpecOf); the fields a guest gains
// (network, guest agent, serial socket) are added here and filled there.
// It lives in pkg/vm, beside the Driver interface, because the driver
// packages import pkg/vm and not the other way round.
type GuestSpec struct {
	ID       string // the VM id: names its files, sockets and process
	OwnerID  string // its files live under the owner's directory
	Hostname string // cloud-init's local-hostname (the VM's name)
	CPU      int
	MemoryMB int
	DiskGB   int    // the overlay's size; never below the base image's
	UserData string // cloud-init user-data; "" for no seed (unless SSHKeys)
	// ReadyLine is the serial line that makes a guest without an agent
	// ready (the template's; DefaultReadyLine when the template names none).
	ReadyLine string
	// SSHKeys are the authorized keys ("TYPE BASE64") fixed at create
	// time, written to the seed's meta-data public-keys.
	SSHKeys []string
	Network string // api.NetworkNAT: one NIC on vmd's guest network; else none
}

// DefaultReadyLine is the tiny test image's line once its init has run.
const DefaultReadyLine = "vmd-tiny: booted"

// SpecOf is the one conversion from a VM's record to what its driver is told.
func SpecOf(v store.VM) GuestSpec {
	return GuestSpec{ID: v.ID, OwnerID: v.OwnerID, Hostname: v.Name,
		CPU: v.CPU, MemoryMB: v.MemoryMB, DiskGB: v.DiskGB, UserData: v.UserData, ReadyLine: DefaultReadyLine, SSHKeys: v.SSHKeys,
		Network: v.Network}
}

// GuestExit is how a guest's process ended.
type GuestExit struct {
	// PoweredOff is set when the guest shut itself down (poweroff inside it,
	// Ctrl-Alt-Del where that powers off): the owner's wish, not a crash.
	PoweredOff bool
	// Message says what was seen (QEMU's exit status, its last log line).
	Message string
}

// GuestEvent is something a guest did that may change its state.
type GuestEvent struct {
	ID   string
	Kind string // EventExited or a QMP event name: SHUTDOWN, STOP, RESET, POWERDOWN, RESUME
	// Guest is set for an event the guest caused itself (a SHUTDOWN or RESET
	// from inside it; on EventExited: it powered itself off).
	Guest   bool
	Message string
	// Addresses are the guest's addresses on an EventAddresses.
	Addresses []string
}

// EventExited is the Kind of a GuestEvent sent when a guest's process is
// gone; the driver sends it only once Exit can answer for that process.
const EventExited = "EXITED"

// Kinds of GuestEvent the driver sends about a guest's inside, as it
// learns it off the reconcile loop (a hung agent holds up nothing).
const (
	// EventReady: the guest agent answered, or the serial port printed the
	// ready line; Message says which.
	EventReady = "READY"
	// EventAddresses: the agent reported these addresses (loopback left out).
	EventAddresses = "ADDRESSES"
)

// GuestAgent is the optional ability of a Driver to reach a running
// guest's agent (qemu.Driver has it). It fails with ErrNoGuest when the
// VM has no live process here.
type GuestAgent interface {
	Agent(id string) (qga.Agent, error)
}

// ErrNoGuest: the VM has no running guest on this node.
var ErrNoGuest = errors.New("the vm is not running")

// StopReporter is the optional ability of a Driver to say how its last
// Stop of a VM ended the guest ("guest agent (guest-shutdown)", "ACPI
// power button", "quit", "SIGKILL"), once, for the VM's events.
type StopReporter interface {
	StopPath(id string) string
}
