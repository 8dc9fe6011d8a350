package server

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/account"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
)

// typedErrors is every api.CodedError of the module with the answer it
// gets: TestTypedErrorsListed fails when a type is missing here.
var typedErrors = []struct {
	err           error
	status        int
	code, message string
	field         string
}{
	{&api.StatusError{Status: 418, Code: "teapot", Message: "short and stout"}, 418, "teapot", "short and stout", ""},
	{&account.ThrottledError{RetryAfter: 90 * time.Second}, 429, api.CodeRateLimited, "too many failed logins; try again in 1m30s", ""},
	{&account.MailThrottledError{T: &account.ThrottledError{RetryAfter: time.Minute}}, 429, api.CodeRateLimited, "too many e-mail requests; try again in 1m0s", ""},
	{&account.FieldError{Field: "new_password", Message: "at least 10 characters"}, 422, api.CodeValidation, "new_password: at least 10 characters", "new_password"},
	{&vm.ValidationError{Field: "cpu", Message: "must be between 1 and 64"}, 422, api.CodeValidation, "cpu: must be between 1 and 64", "cpu"},
	{&store.QuotaError{Resource: "memory", Unit: "MB", Asked: 10000000, Left: 8064, Limit: 8192}, 403, api.CodeQuotaExceeded, "memory: 10000000 MB asked, 8064 MB left of 8192", ""},
	{&vm.NameTakenError{Name: "web"}, 409, api.CodeConflict, "a VM named web already exists", ""},
	{&vm.ConflictError{Message: "vm db is stopped: only a running VM can be paused"}, 409, api.CodeConflict, "vm db is stopped: only a running VM can be paused", ""},
	{&vm.StateConflictError{VM: "db", Op: "snapshot", State: api.StateStarting}, 409, api.CodeConflict, "cannot snapshot vm db while it is starting; wait until it is running or stopped", ""},
	{&vm.SnapshotNotFoundError{VM: "db", Name: "before"}, 404, api.CodeNotFound, "vm db has no snapshot named before", ""},
	{&vm.CapacityError{Demand: api.Quota{CPUs: 1, MemoryMB: 256, DiskGB: 1}, Nodes: 2}, 503, api.CodeNoCapacity, "no node has room for 1 vCPU, 256 MB memory and 1 GB disk (2 nodes take new VMs)", ""},
	{&vm.GuestFileError{Path: "/etc/shadow", Reason: "permission denied or read-only file system", Err: fs.ErrPermission}, 403, api.CodeForbidden, "/etc/shadow in the guest: permission denied or read-only file system", ""},
	{&vm.GuestFileError{Path: "/nope", Reason: "no such file or directory", Err: fs.ErrNotExist}, 404, api.CodeNotFound, "/nope in the guest: no such file or directory", ""},
	{&vm.GuestFileError{Path: "/dev/zero", Reason: "not a regular file"}, 409, api.CodeConflict, "/dev/zero in the guest: not a regular file", ""},
}

// TestMapTypedErrors checks each typed error's status, code, message and
// field, also when wrapped with text that must not show, and in the
// written body with its request id.
func TestMapTypedErrors(t *testing.T) {
	t.Parallel()
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, tc := range typedErrors {
		t.Run(fmt.Sprintf("%T %d", tc.err, tc.status), func(t *testing.T) {
			err := fmt.Errorf("vm web: %s: %w", secret, tc.err)
			status, code, msg := s.mapError(err)
			if status != tc.status || code != tc.code || msg != tc.message {
				t.Fatalf("mapError = %d %s %q, want %d %s %q", status, code, msg, tc.status, tc.code, tc.message)
			}
			if f := errorField(err); f != tc.field {
				t.Fatalf("field = %q, want %q", f, tc.field)
			}
			e := echo.New()
			rec := httptest.NewRecorder()
			c := e.NewContext(httptest.NewRequest("GET", "/", nil), rec)
			c.Response().Header().Set(echo.HeaderXRequestID, "rid-1")
			s.handleError(err, c)
			want := fmt.Sprintf(`{"error":{"code":%q,"message":%q,"request_id":"rid-1"`, tc.code, tc.message)
			if rec.Code != tc.status || !strings.HasPrefix(rec.Body.String(), want) {
				t.Fatalf("answer %d %s, want %d %s…", rec.Code, rec.Body, tc.status, want)
			}
		})
	}
}

// TestMapSentinels checks each sentinel is answered by its own row: a row
// shadowed by an earlier one (a sentinel wrapping another listed first)
// fails here.
func TestMapSentinels(t *testing.T) {
	t.Parallel()
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for i, m := range sentinels {
		err := fmt.Errorf("vm web: %w: %w", m.err, errors.New(secret))
		status, code, msg := s.mapError(err)
		if status != m.status || code != m.code || msg != m.message {
			t.Errorf("sentinels[%d] (%v): mapError = %d %s %q, want %d %s %q", i, m.err, status, code, msg, m.status, m.code, m.message)
		}
		if msg == "" || strings.Contains(msg, "SQLSTATE") {
			t.Errorf("sentinels[%d]: message %q", i, msg)
		}
	}
}

// unknownCoded names a code the mapper has no status for.
type unknownCoded struct{}

func (unknownCoded) Error() string   { return "shown?" }
func (unknownCoded) APICode() string { return "no_such_code" }

// TestMapUnknownCode: a typed error naming a code without a status is a
// 500 without its text, not an answer with status 0.
func TestMapUnknownCode(t *testing.T) {
	t.Parallel()
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if st, code, msg := s.mapError(unknownCoded{}); st != http.StatusInternalServerError || code != api.CodeInternal || msg != "internal error" {
		t.Fatalf("mapError = %d %s %q", st, code, msg)
	}
}

// TestTypedErrorsListed finds every type of pkg/ with an APICode method
// and wants it in typedErrors, so a new typed error gets a row.
func TestTypedErrorsListed(t *testing.T) {
	t.Parallel()
	listed := map[string]bool{}
	for _, tc := range typedErrors {
		listed[strings.TrimPrefix(fmt.Sprintf("%T", tc.err), "*")] = true
	}
	var found []string
	fset := token.NewFileSet()
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Recv == nil || fd.Name.Name != "APICode" {
				continue
			}
			typ := fd.Recv.List[0].Type
			if st, ok := typ.(*ast.StarExpr); ok {
				typ = st.X
			}
			if id, ok := typ.(*ast.Ident); ok {
				found = append(found, f.Name.Name+"."+id.Name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(found)
	if len(found) < len(listed) {
		t.Fatalf("found only %v", found)
	}
	for _, name := range found {
		if !listed[name] {
			t.Errorf("%s implements api.CodedError but has no row in typedErrors", name)
		}
	}
}
