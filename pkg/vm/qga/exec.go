package qga

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ExecRequest is a command to run in the guest with guest-exec.
type ExecRequest struct {
	// Path is the program: absolute, or looked up in the agent's PATH.
	Path string
	Args []string
	// Env replaces the agent's environment when not nil ("NAME=value").
	Env []string
	// Stdin is written to the command's standard input, which is then
	// closed. guest-exec takes it in the command itself: no streaming.
	Stdin []byte
	// Capture keeps stdout and stderr; qemu-ga hands them over only when
	// the command has exited.
	Capture bool
	// Timeout kills the command in the guest once it has run this long
	// (0: no limit but the context's). Exec then returns ErrExecTimeout.
	Timeout time.Duration
	// MaxOutput caps each captured stream (0: DefaultMaxOutput, which is
	// also qemu-ga's own cap); more is cut off and flagged as truncated.
	MaxOutput int
}

// ExecResult is how a command ended.
type ExecResult struct {
	PID int // in the guest
	// ExitCode is the exit status; 128+Signal when a signal ended it, as
	// shells report it.
	ExitCode int
	Signal   int // 0 unless a signal ended the command
	Stdout   []byte
	Stderr   []byte
	// StdoutTruncated and StderrTruncated say output was cut off, by the
	// agent's cap or by MaxOutput.
	StdoutTruncated bool
	StderrTruncated bool
}

type execArgs struct {
	Path          string   `json:"path"`
	Arg           []string `json:"arg,omitempty"`
	Env           []string `json:"env,omitempty"`
	InputData     []byte   `json:"input-data,omitempty"` // base64, by encoding/json
	CaptureOutput bool     `json:"capture-output,omitempty"`
}

type execStatus struct {
	Exited       bool   `json:"exited"`
	ExitCode     *int   `json:"exitcode"`
	Signal       *int   `json:"signal"`
	OutData      []byte `json:"out-data"`
	ErrData      []byte `json:"err-data"`
	OutTruncated bool   `json:"out-truncated"`
	ErrTruncated bool   `json:"err-truncated"`
}

func (*execStatus) liftKeys() []string { return []string{"out-data", "err-data"} }

func (st *execStatus) lift(key string, b64 []byte) (err error) {
	if key == "out-data" {
		st.OutData, err = decodeBase64(b64)
	} else {
		st.ErrData, err = decodeBase64(b64)
	}
	return err
}

// Polling guest-exec-status starts fast, since most commands CI runs end
// within milliseconds, and backs off for long ones.
const (
	pollFirst = time.Millisecond
	pollMax   = 200 * time.Millisecond
)

// Exec implements Agent. It returns the result with a nil error when the
// command ran to its end, whatever its exit status, except in two cases
// where it returns both a result and an error: ErrCommandNotFound (the
// agent could not spawn Path, reported as exit status 127 with the agent's
// message as Stderr, or the command itself exited 127 as shells do for an
// unknown command) and ErrExecTimeout (killed; the result has what was
// captured, if the agent still reported it).
//
// QGA has no command to kill a process, so the timeout is enforced by a
// second guest-exec of /bin/sh that stops the command, then each of its
// descendants found through /proc/*/status, and SIGKILLs them: a command's
// children would otherwise keep its output pipes open and qemu-ga would
// never report it exited. (Wrapping the command in timeout(1) would need
// coreutils in the guest and change its exit statuses.) When the caller's
// context ends first, the kill runs in the background and Exec returns the
// context's error at once.
func (c *Client) Exec(ctx context.Context, req ExecRequest) (*ExecResult, error) {
	if req.Path == "" {
		return nil, errors.New("exec: empty path")
	}
	pid, err := c.spawn(ctx, req)
	if err != nil {
		var qe *Error
		if errors.As(err, &qe) && spawnNotFound(qe) {
			res := &ExecResult{ExitCode: 127, Stderr: []byte(qe.Desc)}
			return res, fmt.Errorf("exec %s: %w: %w", req.Path, ErrCommandNotFound, err)
		}
		return nil, fmt.Errorf("exec %s: %w", req.Path, err)
	}
	var timeout <-chan time.Time
	if req.Timeout > 0 {
		t := time.NewTimer(req.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	delay := pollFirst
	for {
		st, err := c.execStatus(ctx, pid)
		if err != nil {
			if ctx.Err() != nil {
				c.background(func(bctx context.Context) { _, _ = c.kill(bctx, pid) })
			}
			return nil, fmt.Errorf("exec %s (pid %d): %w", req.Path, pid, err)
		}
		if st.Exited {
			res := st.result(pid, req.MaxOutput)
			if res.ExitCode == 127 && res.Signal == 0 {
				return res, fmt.Errorf("exec %s: exit status 127: %w", req.Path, ErrCommandNotFound)
			}
			return res, nil
		}
		wait := time.NewTimer(delay)
		select {
		case <-wait.C:
		case <-timeout:
			wait.Stop()
			kctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
			st, kerr := c.kill(kctx, pid)
			cancel()
			var res *ExecResult
			if st != nil {
				res = st.result(pid, req.MaxOutput)
			}
			if kerr != nil {
				return res, fmt.Errorf("exec %s (pid %d): %w after %v; killing it: %w", req.Path, pid, ErrExecTimeout, req.Timeout, kerr)
			}
			return res, fmt.Errorf("exec %s (pid %d): %w after %v", req.Path, pid, ErrExecTimeout, req.Timeout)
		case <-ctx.Done():
			wait.Stop()
			c.background(func(bctx context.Context) { _, _ = c.kill(bctx, pid) })
			return nil, fmt.Errorf("exec %s (pid %d): %w", req.Path, pid, ctx.Err())
		}
		delay = min(delay*2, pollMax)
	}
}

func (c *Client) spawn(ctx context.Context, req ExecRequest) (int, error) {
	var started struct {
		PID int `json:"pid"`
	}
	err := c.call(ctx, "guest-exec", execArgs{
		Path:          req.Path,
		Arg:           req.Args,
		Env:           req.Env,
		InputData:     req.Stdin,
		CaptureOutput: req.Capture,
	}, &started)
	return started.PID, err
}

// spawnNotFound tells qemu-ga's "Failed to execute child process “/x” (No
// such file or directory)" (GLib's spawn error) from other refusals.
func spawnNotFound(e *Error) bool {
	return strings.Contains(e.Desc, "Failed to execute child process") &&
		strings.Contains(e.Desc, "No such file or directory")
}

func (c *Client) execStatus(ctx context.Context, pid int) (*execStatus, error) {
	var st execStatus
	if err := c.call(ctx, "guest-exec-status", map[string]int{"pid": pid}, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func (st *execStatus) result(pid, max int) *ExecResult {
	if max <= 0 {
		max = DefaultMaxOutput
	}
	r := &ExecResult{
		PID:             pid,
		Stdout:          st.OutData,
		Stderr:          st.ErrData,
		StdoutTruncated: st.OutTruncated,
		StderrTruncated: st.ErrTruncated,
	}
	if len(r.Stdout) > max {
		r.Stdout, r.StdoutTruncated = r.Stdout[:max:max], true
	}
	if len(r.Stderr) > max {
		r.Stderr, r.StderrTruncated = r.Stderr[:max:max], true
	}
	switch {
	case st.Signal != nil && *st.Signal != 0:
		r.Signal = *st.Signal
		r.ExitCode = 128 + r.Signal
	case st.ExitCode != nil:
		r.ExitCode = *st.ExitCode
	}
	return r
}

// killScript stops the process $0 and, depth first, each of its
// descendants (a stopped process cannot fork, so none escapes the walk),
// then SIGKILLs them. PPid comes from /proc/N/status because /proc/N/stat's
// command name may hold spaces. POSIX sh only: the guest's /bin/sh may be
// busybox.
const killScript = `k() {
	kill -STOP "$1" 2>/dev/null
	for s in /proc/[0-9]*/status; do
		while read -r f v; do
			if [ "$f" = PPid: ]; then
				if [ "$v" = "$1" ]; then p=${s#/proc/}; k "${p%/status}"; fi
				break
			fi
		done 2>/dev/null <"$s"
	done
	kill -KILL "$1" 2>/dev/null
}
k "$0"`

// kill ends the command pid and its descendants, then reaps it: it polls
// guest-exec-status until exited (the agent forgets a command only once it
// has reported its end) and returns that last status.
func (c *Client) kill(ctx context.Context, pid int) (*execStatus, error) {
	killer, err := c.spawn(ctx, ExecRequest{Path: "/bin/sh", Args: []string{"-c", killScript, strconv.Itoa(pid)}})
	if err != nil {
		return nil, fmt.Errorf("spawn kill: %w", err)
	}
	var last *execStatus
	for _, p := range []int{killer, pid} {
		delay := pollFirst
		for {
			st, err := c.execStatus(ctx, p)
			if err != nil {
				return last, err
			}
			if st.Exited {
				if p == pid {
					last = st
				}
				break
			}
			wait := time.NewTimer(delay)
			select {
			case <-wait.C:
			case <-ctx.Done():
				wait.Stop()
				return last, fmt.Errorf("pid %d still running: %w", p, ctx.Err())
			}
			delay = min(delay*2, pollMax)
		}
	}
	return last, nil
}
