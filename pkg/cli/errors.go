package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
)

// Exit codes of vmctl, as the contract lists them.
const (
	ExitOK           = 0
	ExitError        = 1
	ExitUsage        = 2
	ExitNotFound     = 3
	ExitAuth         = 4
	ExitQuotaOrClash = 5
	ExitTimeout      = 6
)

// FlagError is a misuse of flags or arguments; Main prints usage and exits 2.
type FlagError struct{ err error }

func (e *FlagError) Error() string { return e.err.Error() }
func (e *FlagError) Unwrap() error { return e.err }

// flagErrorf builds a FlagError.
func flagErrorf(format string, args ...any) error {
	return &FlagError{err: fmt.Errorf(format, args...)}
}

// TimeoutError means a wait ran out of time; exit 6.
type TimeoutError struct{ What string }

func (e *TimeoutError) Error() string { return "timed out waiting for " + e.What }

// NotFoundError is a local lookup that failed (e.g. a config context); exit 3.
type NotFoundError struct{ What string }

func (e *NotFoundError) Error() string { return e.What + " not found" }

// AuthError means no usable credentials are configured; exit 4.
type AuthError struct{ Msg string }

func (e *AuthError) Error() string { return e.Msg }

// ExitCode maps an error returned by a command to vmctl's exit status.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var (
		fe *FlagError
		te *TimeoutError
		nf *NotFoundError
		ae *AuthError
		xe *ExitStatusError
	)
	switch {
	case errors.As(err, &xe):
		return xe.Code
	case errors.As(err, &fe):
		return ExitUsage
	case errors.As(err, &te):
		return ExitTimeout
	case errors.As(err, &nf):
		return ExitNotFound
	case errors.As(err, &ae):
		return ExitAuth
	}
	switch client.ErrorCode(err) {
	case api.CodeNotFound:
		return ExitNotFound
	case api.CodeUnauthenticated, api.CodeForbidden, api.CodeCSRF, api.CodeEmailUnverified, api.CodeInvalidLogin:
		return ExitAuth
	case api.CodeQuotaExceeded, api.CodeConflict:
		return ExitQuotaOrClash
	case "":
	default:
		// validation_failed, bad_request, rate_limited, internal_error, ...: the server said no
		return ExitError
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ExitTimeout
	}
	if isCobraUsageError(err) {
		return ExitUsage
	}
	return ExitError
}

// isCobraUsageError recognises the few usage errors cobra returns as plain
// errors rather than through FlagErrorFunc.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command ", "required flag(s) ", "accepts ", "requires at least ", "invalid argument ", "unknown flag", "unknown shorthand flag", "flag needs an argument"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
