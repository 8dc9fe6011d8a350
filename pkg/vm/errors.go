package vm

import (
	"fmt"

	"github.com/vmdhq/vmd/pkg/api"
)

// ConflictError is a request that does not fit the VM's state (pause a
// stopped VM, start one being deleted). Its text is written for the user,
// so the API shows it; it matches ErrConflict.
type ConflictError struct{ Message string }

func (e *ConflictError) Error() string { return e.Message }

// Unwrap lets errors.Is(err, ErrConflict) find every conflict.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// APICode makes it an api.CodedError.
func (e *ConflictError) APICode() string { return api.CodeConflict }

// conflictf builds a ConflictError; its arguments must be safe to show
// (names, states), never a lower layer's error text.
func conflictf(format string, a ...any) error {
	return &ConflictError{Message: fmt.Sprintf(format, a...)}
}
