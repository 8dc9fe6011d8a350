package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm/qga"
)

// What the owner of a VM does inside it through its guest agent: exec and
// files. The VM service authorizes (the one rule, Authorize through
// lookup), caps each user's concurrent operations, and turns the agent's
// answers into the API's, with texts of its own.

// ErrAgentUnavailable: the guest has no agent, or it does not answer.
var ErrAgentUnavailable = errors.New("the guest agent is not answering")

// ErrTooManyGuestOps: the caller already runs the most execs and copies at once.
var ErrTooManyGuestOps = errors.New("too many guest agent operations at once")

// ErrNotRunning: the VM has no running guest to ask.
var ErrNotRunning = errors.New("the vm is not running")

// GuestFileError is a guest file the agent could not open, read or write;
// its text is safe to show.
type GuestFileError struct {
	Path   string
	Reason string // "permission denied or read-only file system", "no such file or directory"
	Err    error  // fs.ErrPermission, fs.ErrNotExist or nil
}

func (e *GuestFileError) Error() string { return e.Path + " in the guest: " + e.Reason }

// Unwrap lets errors.Is find fs.ErrPermission and fs.ErrNotExist.
func (e *GuestFileError) Unwrap() error { return e.Err }

// APICode makes it an api.CodedError: a file the guest refuses is
// forbidden, a missing one not found, any other failure a conflict with
// the guest's state.
func (e *GuestFileError) APICode() string {
	switch {
	case errors.Is(e.Err, fs.ErrPermission):
		return api.CodeForbidden
	case errors.Is(e.Err, fs.ErrNotExist):
		return api.CodeNotFound
	}
	return api.CodeConflict
}

// Limits of guest agent operations.
const (
	DefaultExecTimeout   = 30 * time.Second
	MaxExecTimeout       = time.Hour
	DefaultExecMaxOutput = 4 << 20 // per stream
	DefaultGuestOps      = 4       // per user, at once
	DefaultMaxUpload     = 4 << 30
)

// GuestConfig tunes the guest operations of a Service; zero values take the defaults.
type GuestConfig struct {
	// Agents reaches a running guest's agent (the driver); nil: none has one.
	Agents GuestAgent
	// OpsPerUser caps a user's concurrent execs and copies (DefaultGuestOps).
	OpsPerUser int
	// MaxOutput caps each captured stream of an exec (DefaultExecMaxOutput).
	MaxOutput int
	// MaxUpload caps one upload's bytes (DefaultMaxUpload); the server
	// stops reading the body there.
	MaxUpload int64
}

func (c GuestConfig) withDefaults() GuestConfig {
	if c.OpsPerUser <= 0 {
		c.OpsPerUser = DefaultGuestOps
	}
	if c.MaxOutput <= 0 {
		c.MaxOutput = DefaultExecMaxOutput
	}
	if c.MaxUpload <= 0 {
		c.MaxUpload = DefaultMaxUpload
	}
	return c
}

// guestOps counts each user's running guest operations.
type guestOps struct {
	mu sync.Mutex
	n  map[string]int
}

func (g *guestOps) acquire(user string, limit int) (func(), error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n == nil {
		g.n = map[string]int{}
	}
	if g.n[user] >= limit {
		return nil, fmt.Errorf("%w: you already run %d (the limit); wait for one to end", ErrTooManyGuestOps, limit)
	}
	g.n[user]++
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.n[user]--; g.n[user] <= 0 {
			delete(g.n, user)
		}
	}, nil
}

// SetGuest wires the guest agent operations (after the driver exists).
func (s *Service) SetGuest(c GuestConfig) { s.guest = c.withDefaults() }

// MaxUpload is the most bytes one upload may carry.
func (s *Service) MaxUpload() int64 { return s.guest.withDefaults().MaxUpload }

// agentOf looks the VM up for caller, takes one of the caller's operation
// slots and returns the guest's agent; release gives the slot back.
func (s *Service) agentOf(ctx context.Context, caller store.User, ref string) (qga.Agent, func(), error) {
	v, err := s.lookup(ctx, caller, ref)
	if err != nil {
		return nil, nil, err
	}
	if v.State != api.StateRunning {
		return nil, nil, fmt.Errorf("vm %s is %s: %w", v.Name, v.State, ErrNotRunning)
	}
	cfg := s.guest.withDefaults()
	if cfg.Agents == nil {
		return nil, nil, fmt.Errorf("vm %s: %w", v.Name, ErrAgentUnavailable)
	}
	a, err := cfg.Agents.Agent(v.ID)
	if err != nil {
		if errors.Is(err, ErrNoGuest) {
			return nil, nil, fmt.Errorf("vm %s is not running here yet: %w", v.Name, ErrNotRunning)
		}
		return nil, nil, fmt.Errorf("vm %s: %w", v.Name, ErrAgentUnavailable)
	}
	release, err := s.ops.acquire(caller.ID, cfg.OpsPerUser)
	if err != nil {
		return nil, nil, err
	}
	s.Touch(ctx, v.ID) // an exec or a copy is activity: idle stop waits
	return a, release, nil
}

// agentError turns what the agent said into the service's errors.
func agentError(what string, err error) error {
	switch {
	case errors.Is(err, qga.ErrNoAgent), errors.Is(err, qga.ErrClosed):
		return fmt.Errorf("%s: %w", what, ErrAgentUnavailable)
	case errors.Is(err, qga.ErrUnsupported):
		return fmt.Errorf("%s: the guest agent has this command disabled: %w", what, ErrAgentUnavailable)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// ParseExec checks an exec request and returns what to run.
func ParseExec(r api.ExecRequest) (qga.ExecRequest, error) {
	if len(r.Command) == 0 || r.Command[0] == "" {
		return qga.ExecRequest{}, &ValidationError{"command", "is required: the program and its arguments"}
	}
	req := qga.ExecRequest{Path: r.Command[0], Args: r.Command[1:], Capture: true, Timeout: DefaultExecTimeout}
	if r.Timeout != "" {
		d, err := time.ParseDuration(r.Timeout)
		if err != nil || d <= 0 || d > MaxExecTimeout {
			return qga.ExecRequest{}, &ValidationError{"timeout", fmt.Sprintf("must be a duration such as 30s, above 0 and at most %s", MaxExecTimeout)}
		}
		req.Timeout = d
	}
	switch r.StdinEncoding {
	case "", api.EncodingUTF8:
		if r.Stdin != "" {
			req.Stdin = []byte(r.Stdin)
		}
	case api.EncodingBase64:
		b, err := api.DecodeBase64(r.Stdin)
		if err != nil {
			return qga.ExecRequest{}, &ValidationError{"stdin", "is not valid base64"}
		}
		req.Stdin = b
	default:
		return qga.ExecRequest{}, &ValidationError{"stdin_encoding", `must be "utf-8" or "base64"`}
	}
	return req, nil
}

// Exec runs a command in the caller's running VM and waits for it.
func (s *Service) Exec(ctx context.Context, caller store.User, ref string, r api.ExecRequest) (api.ExecResponse, error) {
	req, err := ParseExec(r)
	if err != nil {
		return api.ExecResponse{}, err
	}
	a, release, err := s.agentOf(ctx, caller, ref)
	if err != nil {
		return api.ExecResponse{}, err
	}
	defer release()
	req.MaxOutput = s.guest.withDefaults().MaxOutput
	res, err := a.Exec(ctx, req)
	out := api.ExecResponse{}
	switch {
	case errors.Is(err, qga.ErrCommandNotFound):
		out.ExitCode = 127
		out.Message = "command not found in the guest: " + req.Path
	case errors.Is(err, qga.ErrExecTimeout):
		out.ExitCode = api.ExitTimedOut
		out.TimedOut = true
		out.Message = fmt.Sprintf("the command ran past its timeout of %s and was killed in the guest", req.Timeout)
	case err != nil:
		return api.ExecResponse{}, agentError("exec in vm "+ref, err)
	}
	if res != nil {
		if out.Message == "" {
			out.ExitCode, out.Signal = res.ExitCode, res.Signal
		}
		out.Stdout, out.StdoutEncoding = api.EncodeOutput(res.Stdout)
		out.Stderr, out.StderrEncoding = api.EncodeOutput(res.Stderr)
		if errors.Is(err, qga.ErrCommandNotFound) {
			// The agent's spawn failure text is the guest's own: not shown.
			out.Stderr, out.StderrEncoding = "", ""
		}
		out.Truncated = res.StdoutTruncated || res.StderrTruncated
	}
	if out.Truncated {
		out.Message = joinMsg(out.Message, fmt.Sprintf("output was cut off at %d bytes per stream", req.MaxOutput))
	}
	return out, nil
}

func joinMsg(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// fileError turns the agent's answer about a guest file into the service's.
func fileError(p string, err error) error {
	switch {
	case errors.Is(err, qga.ErrBadPath):
		return &ValidationError{"path", "must be absolute, without .. elements"}
	case errors.Is(err, fs.ErrPermission):
		return &GuestFileError{Path: p, Reason: "permission denied or read-only file system", Err: fs.ErrPermission}
	case errors.Is(err, fs.ErrNotExist):
		return &GuestFileError{Path: p, Reason: "no such file or directory", Err: fs.ErrNotExist}
	}
	var qe *qga.Error
	if errors.As(err, &qe) {
		return &GuestFileError{Path: p, Reason: "the guest agent refused the file operation"}
	}
	return agentError("file "+p, err)
}

// CheckGuestPath is the rule for a guest path: absolute, no .. elements.
func CheckGuestPath(p string) error {
	if err := qga.CheckPath(p); err != nil {
		return &ValidationError{"path", "must be absolute, without .. elements"}
	}
	return nil
}

// Upload writes r to the guest file p (created or truncated) of the
// caller's running VM, streaming it in chunks; it returns the bytes written.
func (s *Service) Upload(ctx context.Context, caller store.User, ref, p string, r io.Reader) (int64, error) {
	if err := CheckGuestPath(p); err != nil {
		return 0, err
	}
	a, release, err := s.agentOf(ctx, caller, ref)
	if err != nil {
		return 0, err
	}
	defer release()
	// A failure reading r (the body cut off, or over the server's size
	// limit) stays in the chain for the server to recognise.
	n, err := a.Upload(ctx, p, r, 0, nil)
	if err != nil {
		return n, fileError(p, err)
	}
	return n, nil
}

// Download copies the guest file p of the caller's running VM to w. Open
// fails before anything is written, so the caller can still answer with
// an error; start is called once, before the first byte (or at the end of
// an empty file), for the caller's headers.
func (s *Service) Download(ctx context.Context, caller store.User, ref, p string, w io.Writer, start func()) (int64, error) {
	if err := CheckGuestPath(p); err != nil {
		return 0, err
	}
	a, release, err := s.agentOf(ctx, caller, ref)
	if err != nil {
		return 0, err
	}
	defer release()
	lw := &lazyWriter{w: w, start: start}
	n, err := a.Download(ctx, p, lw, nil)
	if err != nil {
		if lw.started {
			return n, fmt.Errorf("download %s cut off after %d bytes: %w", p, n, err)
		}
		return n, fileError(p, err)
	}
	lw.begin()
	return n, nil
}

// lazyWriter calls start before its first write, or at the end for an empty file.
type lazyWriter struct {
	w       io.Writer
	start   func()
	started bool
}

func (l *lazyWriter) begin() {
	if !l.started {
		l.started = true
		if l.start != nil {
			l.start()
		}
	}
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	l.begin()
	return l.w.Write(p)
}
