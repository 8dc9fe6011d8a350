package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestClassify checks each driver error lands on the sentinel the API maps.
func TestClassify(t *testing.T) {
	t.Parallel()
	pg := func(code string) error { return &pgconn.PgError{Severity: "FATAL", Code: code, Message: "msg"} }
	for _, tc := range []struct {
		name string
		err  error
		want error // nil: returned unchanged, no sentinel
	}{
		{"unique", pg("23505"), ErrConflict},
		{"foreign key", pg("23503"), ErrNotFound},
		{"admin shutdown (pg_terminate_backend, server stop)", pg("57P01"), ErrUnavailable},
		{"crash shutdown", pg("57P02"), ErrUnavailable},
		{"cannot connect now (starting up)", pg("57P03"), ErrUnavailable},
		{"connection failure", pg("08006"), ErrUnavailable},
		{"connection does not exist", pg("08003"), ErrUnavailable},
		{"too many connections", pg("53300"), ErrUnavailable},
		{"wrapped admin shutdown", fmt.Errorf("get user: %w", pg("57P01")), ErrUnavailable},
		{"syntax error", pg("42601"), nil},
		{"conn closed", pgconn.ErrConnClosed, ErrUnavailable},
		{"unexpected eof", fmt.Errorf("failed to receive message: %w", io.ErrUnexpectedEOF), ErrUnavailable},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, ErrUnavailable},
		{"caller cancelled", context.Canceled, nil},
		{"caller deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), nil},
		{"other", errors.New("boom"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classify(tc.err)
			for _, s := range []error{ErrConflict, ErrNotFound, ErrUnavailable} {
				if errors.Is(got, s) != (s == tc.want) {
					t.Fatalf("classify(%v) = %v: errors.Is %v = %v", tc.err, got, s, !(s == tc.want))
				}
			}
			if !errors.Is(got, tc.err) {
				t.Fatalf("classify(%v) = %v lost the driver error from the chain", tc.err, got)
			}
		})
	}
	if classify(nil) != nil {
		t.Fatal("classify(nil) != nil")
	}
}
