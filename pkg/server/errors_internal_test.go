package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/cluster"
	"github.com/vmdhq/vmd/pkg/console"
	"github.com/vmdhq/vmd/pkg/image"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
)

// secret stands for store, driver and system text that must never reach a user.
const secret = "UNIQUE constraint failed: vms.owner_id, vms.name (2067) /var/lib/vmd SQLSTATE"

// TestMapError checks the one mapper: every error gets its status and code,
// and the message comes only from errors that carry a safe one.
func TestMapError(t *testing.T) {
	t.Parallel()
	leak := errors.New(secret)
	wrap := func(sentinel error) error { return fmt.Errorf("vm web: %w: %w", sentinel, leak) }
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, tc := range []struct {
		name    string
		err     error
		status  int
		code    string
		message string // "" : any message without the secret
	}{
		{"status error", fmt.Errorf("ctx: %w", &api.StatusError{Status: 418, Code: "teapot", Message: "short and stout"}), 418, "teapot", "short and stout"},
		{"validation", fmt.Errorf("create: %w", &vm.ValidationError{Field: "cpu", Message: "must be between 1 and 64"}), 422, api.CodeValidation, "cpu: must be between 1 and 64"},
		{"not found", wrap(store.ErrNotFound), 404, api.CodeNotFound, ""},
		{"name taken", fmt.Errorf("create vm web: %w", &vm.NameTakenError{Name: "web"}), 409, api.CodeConflict, "a VM named web already exists"},
		{"state conflict", fmt.Errorf("pause vm_1: %w", &vm.ConflictError{Message: "vm db is stopped: only a running VM can be paused"}), 409, api.CodeConflict, "vm db is stopped: only a running VM can be paused"},
		{"quota with its limit", fmt.Errorf("create: %w", &store.QuotaError{Resource: "memory", Unit: "MB", Asked: 10000000, Left: 8064, Limit: 8192}), 403, api.CodeQuotaExceeded, "memory: 10000000 MB asked, 8064 MB left of 8192"},
		{"capacity", fmt.Errorf("place: %w", &vm.CapacityError{Demand: api.Quota{CPUs: 1, MemoryMB: 256, DiskGB: 1}, Nodes: 2}), 503, api.CodeNoCapacity, ""},
		{"event streams", wrap(vm.ErrTooManyStreams), 429, api.CodeRateLimited, ""},
		{"conflict", wrap(store.ErrConflict), 409, api.CodeConflict, ""},
		{"quota", wrap(store.ErrQuotaExceeded), 403, api.CodeQuotaExceeded, ""},
		{"database gone", wrap(store.ErrUnavailable), 503, api.CodeUnavailable, ""},
		{"template not found", fmt.Errorf("template %q: %w", "/etc/"+secret, image.ErrNotFound), 404, api.CodeNotFound, "template not found"},
		{"template name", wrap(image.ErrInvalidName), 422, api.CodeValidation, ""},
		{"template exists", wrap(image.ErrExists), 409, api.CodeConflict, ""},
		{"template corrupt", fmt.Errorf("%w: qemu-img info: %s", image.ErrCorrupt, secret), 503, api.CodeTemplateInvalid, ""},
		{"template checksum", wrap(image.ErrChecksumMismatch), 503, api.CodeTemplateInvalid, ""},
		{"console token", wrap(console.ErrTokenInvalid), 403, api.CodeInvalidToken, console.ErrTokenInvalid.Error()},
		{"console token of an ended login", fmt.Errorf("take: %w", console.ErrSessionEnded), 403, api.CodeInvalidToken, console.ErrSessionEnded.Error()},
		{"console origin", fmt.Errorf("%w: origin %q is not %s", console.ErrOrigin, secret, "x"), 403, api.CodeForbidden, console.ErrOrigin.Error()},
		{"console wrong user", wrap(console.ErrWrongUser), 403, api.CodeForbidden, ""},
		{"console not running", wrap(console.ErrNotRunning), 409, api.CodeConflict, ""},
		{"console sessions", wrap(console.ErrTooManySessions), 429, api.CodeRateLimited, ""},
		{"console vnc dial", fmt.Errorf("%w: dial vnc.sock: %w", console.ErrUnavailable, syscall.EAGAIN), 503, api.CodeUnavailable, ""},
		{"not a websocket", console.ErrNotWebSocket, 426, api.CodeBadRequest, ""},
		{"websocket version", fmt.Errorf("%w: unsupported websocket version %q (want 13)", console.ErrBadHandshake, secret), 400, api.CodeBadRequest, ""},
		{"no capacity", wrap(cluster.ErrNoCapacity), 503, api.CodeNoCapacity, ""},
		{"forbidden", wrap(vm.ErrForbidden), 403, api.CodeForbidden, ""},
		{"disk full", fmt.Errorf("write %s: %w", secret, syscall.ENOSPC), 507, api.CodeInsufficient, ""},
		{"network", fmt.Errorf("redis: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New(secret)}), 503, api.CodeUnavailable, ""},
		{"no route", echo.ErrNotFound, 404, api.CodeNotFound, ""},
		{"wrong method", echo.ErrMethodNotAllowed, 405, api.CodeMethodNotAllowed, ""},
		{"body limit (echo)", fmt.Errorf("read request body: %w", echo.ErrStatusRequestEntityTooLarge), 413, api.CodeTooLarge, ""},
		{"body limit (net/http)", &http.MaxBytesError{Limit: 1}, 413, api.CodeTooLarge, ""},
		{"anything else", leak, 500, api.CodeInternal, "internal error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, code, msg := s.mapError(tc.err)
			if status != tc.status || code != tc.code {
				t.Fatalf("mapError = %d %s (%q), want %d %s", status, code, msg, tc.status, tc.code)
			}
			if msg == "" || strings.Contains(msg, "SQLSTATE") || strings.Contains(msg, "UNIQUE") || strings.Contains(msg, "vm web") {
				t.Fatalf("message %q is empty or carries text of the wrapped chain", msg)
			}
			if tc.message != "" && msg != tc.message {
				t.Fatalf("message = %q, want %q", msg, tc.message)
			}
		})
	}
}

// TestDecode checks decode takes exactly one JSON value and says what is
// wrong in a bounded message.
func TestDecode(t *testing.T) {
	t.Parallel()
	type body struct {
		Name string `json:"name"`
		CPU  int    `json:"cpu"`
	}
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"object", `{"name":"web","cpu":1}`, true},
		{"trailing white space", "{\"name\":\"web\"} \r\n\t", true},
		{"trailing word", `{"name":"web"} x`, false},
		{"second object", `{"name":"web"}{"name":"db"}`, false},
		{"second object after space", `{"name":"web"} {}`, false},
		{"stray brace", `{"name":"web"}}`, false},
		{"stray bracket", `{"name":"web"}]`, false},
		{"trailing comma", `{"name":"web"},`, false},
		{"trailing number", `{"name":"web"} 1`, false},
		{"empty", ``, false},
		{"truncated", `{"name":"web"`, false},
		{"array", `[]`, false},
		{"wrong type", `{"cpu":"two"}`, false},
		{"unknown field", `{"admin":true}`, false},
		{"huge unknown field", `{"` + strings.Repeat("k", 100000) + `":1}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := echo.New().NewContext(httptest.NewRequest("POST", "/", strings.NewReader(tc.in)), httptest.NewRecorder())
			var b body
			err := decode(c, &b)
			if tc.ok {
				if err != nil || b.Name != "web" {
					t.Fatalf("decode = %v, %+v", err, b)
				}
				return
			}
			var se *api.StatusError
			if !errors.As(err, &se) || se.Status != 400 || se.Code != api.CodeBadRequest {
				t.Fatalf("decode = %#v, want a 400 bad_request", err)
			}
			if len(se.Message) > maxDecodeMessage+64 {
				t.Fatalf("message of %d bytes", len(se.Message))
			}
		})
	}
}
