package qga

import (
	"context"
	"io"
	"io/fs"
)

// Agent is what vmd asks of a guest's agent. *Client implements it; a
// driver's tests can fake it. Every method returns within its context (and
// the client's CommandTimeout), and fails with ErrNoAgent when nothing
// answers, or an *Error when the agent refuses.
type Agent interface {
	// Ping is guest-ping after the handshake: nil means the agent answers,
	// which is what makes a guest "ready".
	Ping(ctx context.Context) error
	// Info is guest-info: the agent's version and its commands.
	Info(ctx context.Context) (*Info, error)

	// Exec runs a command in the guest and waits for it; see ExecRequest.
	Exec(ctx context.Context, req ExecRequest) (*ExecResult, error)

	// Upload writes r to the guest file at path (created or truncated) and,
	// when mode is not 0, sets its permission bits. It returns the bytes written.
	Upload(ctx context.Context, path string, r io.Reader, mode fs.FileMode, progress Progress) (int64, error)
	// Download copies the guest file at path to w and returns the bytes copied.
	Download(ctx context.Context, path string, w io.Writer, progress Progress) (int64, error)

	// NetworkInterfaces is guest-network-get-interfaces.
	NetworkInterfaces(ctx context.Context) ([]Interface, error)
	// Shutdown asks the guest to power down, halt or reboot. The agent
	// sends no reply on success, so silence or the connection ending is
	// success; only an error reply (say, the command disabled) fails.
	Shutdown(ctx context.Context, mode ShutdownMode) error

	// FsFreeze freezes the guest's filesystems and returns how many; the
	// caller must FsThaw, also when its snapshot fails. While frozen the
	// agent refuses most commands (ErrUnsupported).
	FsFreeze(ctx context.Context) (int, error)
	// FsThaw thaws them and returns how many.
	FsThaw(ctx context.Context) (int, error)
	// FsFreezeStatus is guest-fsfreeze-status.
	FsFreezeStatus(ctx context.Context) (FreezeStatus, error)

	// Close ends the connection; the guest is not affected.
	Close() error
}

// Progress is told the bytes done so far after every chunk, and the total:
// Download learns the file's size from the agent (-1 for files without one,
// such as /proc's); Upload passes -1, as only its caller knows its reader's.
type Progress func(done, total int64)
