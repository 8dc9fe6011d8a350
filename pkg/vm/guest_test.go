package vm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/qga"
)

// fakeAgent is a guest agent that answers from fields; Exec blocks on
// hold when set. The service under test is real, over a real store.
type fakeAgent struct {
	qga.Agent // unimplemented methods panic
	res       *qga.ExecResult
	err       error
	hold      chan struct{}
	entered   chan struct{}
	gotReq    qga.ExecRequest
	files     map[string][]byte
	fileErr   error
}

func (f *fakeAgent) Exec(ctx context.Context, req qga.ExecRequest) (*qga.ExecResult, error) {
	f.gotReq = req
	if f.hold != nil {
		f.entered <- struct{}{}
		<-f.hold
	}
	return f.res, f.err
}

func (f *fakeAgent) Upload(_ context.Context, p string, r io.Reader, _ fs.FileMode, _ qga.Progress) (int64, error) {
	if f.fileErr != nil {
		return 0, f.fileErr
	}
	b, err := io.ReadAll(r)
	f.files[p] = b
	return int64(len(b)), err
}

func (f *fakeAgent) Download(_ context.Context, p string, w io.Writer, _ qga.Progress) (int64, error) {
	if f.fileErr != nil {
		return 0, f.fileErr
	}
	n, err := w.Write(f.files[p])
	return int64(n), err
}

type agents struct {
	a  qga.Agent
	id string
}

func (g agents) Agent(id string) (qga.Agent, error) {
	if id != g.id || g.a == nil {
		return nil, vm.ErrNoGuest
	}
	return g.a, nil
}

func TestGuestOperations(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		ctx := context.Background()
		for _, u := range []string{"alice", "bob"} {
			if err := st.CreateUser(ctx, store.User{ID: u, Email: u + "@example.com",
				Quota: api.Quota{VMs: 9, CPUs: 9, MemoryMB: 9999, DiskGB: 99}}); err != nil {
				t.Fatal(err)
			}
		}
		svc := vm.NewService(vm.ServiceConfig{Store: st, Templates: templates{}, Node: "n1"})
		v, err := svc.Create(ctx, "alice", api.CreateVMRequest{Name: "web", Template: "tiny"})
		if err != nil {
			t.Fatal(err)
		}
		alice, bob := store.User{ID: "alice"}, store.User{ID: "bob"}
		fa := &fakeAgent{files: map[string][]byte{}}
		svc.SetGuest(vm.GuestConfig{Agents: agents{a: fa, id: v.ID}, OpsPerUser: 1, MaxOutput: 8})
		run := api.ExecRequest{Command: []string{"true"}}

		if _, err := svc.Exec(ctx, alice, "web", run); !errors.Is(err, vm.ErrNotRunning) {
			t.Fatalf("exec in a VM not running: %v", err)
		}
		if _, err := st.SetState(ctx, v.ID, api.StateRunning, "running"); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Exec(ctx, bob, v.ID, run); !errors.Is(err, vm.ErrNotFound) {
			t.Fatalf("bob's exec in alice's VM: %v", err)
		}
		if _, err := svc.Upload(ctx, bob, v.ID, "/tmp/x", strings.NewReader("x")); !errors.Is(err, vm.ErrNotFound) {
			t.Fatalf("bob's upload to alice's VM: %v", err)
		}

		tests := []struct {
			name string
			req  api.ExecRequest
			res  *qga.ExecResult
			err  error
			want api.ExecResponse
			fail error
		}{
			{"exit 42", run, &qga.ExecResult{ExitCode: 42, Stdout: []byte("hi\n")}, nil,
				api.ExecResponse{ExitCode: 42, Stdout: "hi\n"}, nil},
			{"binary output in base64", run, &qga.ExecResult{Stdout: []byte{0xff, 0xfe}}, nil,
				api.ExecResponse{Stdout: "//4=", StdoutEncoding: api.EncodingBase64}, nil},
			{"truncated", run, &qga.ExecResult{Stdout: []byte("12345678"), StdoutTruncated: true}, nil,
				api.ExecResponse{Stdout: "12345678", Truncated: true, Message: "output was cut off at 8 bytes per stream"}, nil},
			{"not found", api.ExecRequest{Command: []string{"nope"}}, &qga.ExecResult{ExitCode: 127, Stderr: []byte("guest text")},
				fmt.Errorf("exec: %w", qga.ErrCommandNotFound),
				api.ExecResponse{ExitCode: 127, Message: "command not found in the guest: nope"}, nil},
			{"timeout", api.ExecRequest{Command: []string{"sleep", "9"}, Timeout: "2s"}, nil, fmt.Errorf("exec: %w", qga.ErrExecTimeout),
				api.ExecResponse{ExitCode: 124, TimedOut: true, Message: "the command ran past its timeout of 2s and was killed in the guest"}, nil},
			{"no agent", run, nil, fmt.Errorf("exec: %w", qga.ErrNoAgent), api.ExecResponse{}, vm.ErrAgentUnavailable},
			{"empty command", api.ExecRequest{}, nil, nil, api.ExecResponse{}, vm.ErrInvalid},
			{"bad timeout", api.ExecRequest{Command: []string{"x"}, Timeout: "2h"}, nil, nil, api.ExecResponse{}, vm.ErrInvalid},
			{"bad stdin", api.ExecRequest{Command: []string{"x"}, Stdin: "!!", StdinEncoding: "base64"}, nil, nil, api.ExecResponse{}, vm.ErrInvalid},
		}
		for _, tc := range tests {
			fa.res, fa.err = tc.res, tc.err
			got, err := svc.Exec(ctx, alice, "web", tc.req)
			if tc.fail != nil {
				if !errors.Is(err, tc.fail) {
					t.Errorf("%s: error %v, want %v", tc.name, err, tc.fail)
				}
				continue
			}
			if err != nil || got != tc.want {
				t.Errorf("%s: got %+v, %v\nwant %+v", tc.name, got, err, tc.want)
			}
		}
		fa.res, fa.err = &qga.ExecResult{}, nil
		if _, err := svc.Exec(ctx, alice, "web", api.ExecRequest{Command: []string{"cat"}, Stdin: "AAE=", StdinEncoding: "base64"}); err != nil ||
			!bytes.Equal(fa.gotReq.Stdin, []byte{0, 1}) || fa.gotReq.Path != "cat" {
			t.Fatalf("base64 stdin: %+v, %v", fa.gotReq, err)
		}

		// One operation at a time for alice here: a second is refused, not queued.
		fa.hold, fa.entered = make(chan struct{}), make(chan struct{}, 1)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = svc.Exec(ctx, alice, "web", run) }()
		<-fa.entered
		if _, err := svc.Exec(ctx, alice, "web", run); !errors.Is(err, vm.ErrTooManyGuestOps) {
			t.Fatalf("second exec at once: %v", err)
		}
		close(fa.hold)
		wg.Wait()
		fa.hold = nil

		// Files: streamed both ways; bad paths and the guest's refusals.
		if n, err := svc.Upload(ctx, alice, "web", "/tmp/a", strings.NewReader("data")); err != nil || n != 4 {
			t.Fatalf("upload: %d, %v", n, err)
		}
		var out bytes.Buffer
		started := false
		if _, err := svc.Download(ctx, alice, "web", "/tmp/a", &out, func() { started = true }); err != nil || out.String() != "data" || !started {
			t.Fatalf("download: %q, started %v, %v", out.String(), started, err)
		}
		for _, p := range []string{"tmp/a", "/tmp/../etc/passwd", ""} {
			if _, err := svc.Upload(ctx, alice, "web", p, strings.NewReader("x")); !errors.Is(err, vm.ErrInvalid) {
				t.Errorf("upload to %q: %v", p, err)
			}
		}
		fa.fileErr = fmt.Errorf("open: %w", &qga.Error{Command: "guest-file-open", Class: "GenericError", Desc: "failed to open file '/ro/x' (mode: 'w'): Read-only file system"})
		_, err = svc.Upload(ctx, alice, "web", "/ro/x", strings.NewReader("x"))
		var gfe *vm.GuestFileError
		if !errors.As(err, &gfe) || !errors.Is(err, fs.ErrPermission) || strings.Contains(err.Error(), "mode:") {
			t.Fatalf("read-only upload: %v", err)
		}
		started = false
		fa.fileErr = fmt.Errorf("open: %w", &qga.Error{Command: "guest-file-open", Desc: "No such file or directory"})
		if _, err := svc.Download(ctx, alice, "web", "/none", &out, func() { started = true }); !errors.Is(err, fs.ErrNotExist) || started {
			t.Fatalf("missing download: %v, started %v", err, started)
		}
	})
}
