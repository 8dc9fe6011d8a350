package qga

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

var (
	// ErrNoAgent means nothing answered: the socket is absent or refuses,
	// the guest has no agent running, or the agent did not reply before the
	// caller's deadline. It is wrapped together with the cause (a dial error,
	// io.EOF, context.DeadlineExceeded, …).
	ErrNoAgent = errors.New("guest agent not answering")
	// ErrClosed is returned by calls on a Client after Close.
	ErrClosed = errors.New("guest agent client closed")
	// ErrUnsupported means the agent does not know the command or has it
	// disabled (qemu-ga -b, or a frozen filesystem).
	ErrUnsupported = errors.New("guest agent command not available")
	// ErrBadPath is a guest path that is not absolute or has a ".." element.
	ErrBadPath = errors.New("guest path must be absolute without .. elements")
	// ErrCommandNotFound is an Exec whose binary does not exist: the agent
	// could not spawn it, or a shell reported exit status 127.
	ErrCommandNotFound = errors.New("command not found in the guest")
	// ErrExecTimeout is an Exec that ran past its Timeout and was killed.
	ErrExecTimeout = errors.New("command timed out in the guest and was killed")
)

// Error is an error reply of the agent: {"error": {"class": …, "desc": …}}.
type Error struct {
	Command string // the command it answers, e.g. guest-file-open
	Class   string // GenericError, CommandNotFound, …
	Desc    string // the agent's text, e.g. "failed to open file …: Permission denied"
}

func (e *Error) Error() string {
	return fmt.Sprintf("guest agent %s: %s", e.Command, e.Desc)
}

// Is lets callers test a reply with errors.Is against ErrUnsupported,
// fs.ErrPermission and fs.ErrNotExist. qemu-ga's replies carry only the
// strerror text of the guest's failure, so the text is what is matched.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrUnsupported:
		return e.Class == "CommandNotFound"
	case fs.ErrPermission:
		return strings.Contains(e.Desc, "Permission denied") ||
			strings.Contains(e.Desc, "Read-only file system") ||
			strings.Contains(e.Desc, "Operation not permitted")
	case fs.ErrNotExist:
		return strings.Contains(e.Desc, "No such file or directory")
	}
	return false
}
