package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/vmdhq/vmd/pkg/api"
)

// fakeBackend is an in-memory vmd below the TUI: it records the calls the
// dashboard makes and streams the changes a test pushes.
type fakeBackend struct {
	mu        sync.Mutex
	vms       []api.VM
	user      api.User
	templates []api.Template
	calls     []string
	created   []api.CreateVMRequest
	changes   chan Change
	errs      chan error
	failWith  error
}

var t0 = time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)

var webExpiry = t0.Add(25 * time.Minute)

func newFake() *fakeBackend {
	return &fakeBackend{
		vms: []api.VM{
			{ID: "vm_01", Name: "web", Template: "tiny", CPU: 1, MemoryMB: 256, DiskGB: 1, State: api.StateRunning, Node: "node-a", CreatedAt: t0.Add(-5 * time.Minute), ExpiresAt: &webExpiry},
			{ID: "vm_02", Name: "db", Template: "debian", CPU: 2, MemoryMB: 2048, DiskGB: 20, State: api.StateStopped, Node: "node-a", CreatedAt: t0.Add(-26 * time.Hour),
				Snapshots: []api.Snapshot{{Name: "nightly", Consistency: api.ConsistencyStopped, SizeGB: 1}}},
			{ID: "vm_03", Name: "build", Template: "tiny", CPU: 1, MemoryMB: 128, DiskGB: 1, State: api.StateError, Node: "node-b", Message: "qemu exited", CreatedAt: t0.Add(-90 * time.Second)},
			{ID: "vm_04", Name: "cache", Template: "tiny", CPU: 1, MemoryMB: 128, DiskGB: 1, State: api.StateProvisioning, CreatedAt: t0.Add(-3 * time.Second)},
		},
		user: api.User{Email: "ada@example.com",
			Quota: api.Quota{VMs: 5, CPUs: 8, MemoryMB: 4096, DiskGB: 50},
			Usage: api.Quota{VMs: 4, CPUs: 5, MemoryMB: 2560, DiskGB: 23}},
		templates: []api.Template{{Name: "debian"}, {Name: "tiny"}},
		changes:   make(chan Change, 16),
		errs:      make(chan error, 1),
	}
}

func (f *fakeBackend) record(format string, a ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, a...))
	return f.failWith
}

func (f *fakeBackend) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{}, f.calls...)
}

func (f *fakeBackend) find(id string) (*api.VM, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.vms {
		if f.vms[i].ID == id || f.vms[i].Name == id {
			vm := f.vms[i]
			return &vm, nil
		}
	}
	return nil, errors.New("vm " + id + " not found")
}

func (f *fakeBackend) Me(context.Context) (*api.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.user
	return &u, nil
}

func (f *fakeBackend) ListVMs(context.Context, bool) ([]api.VM, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]api.VM{}, f.vms...), nil
}

func (f *fakeBackend) Templates(context.Context) ([]api.Template, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]api.Template{}, f.templates...), nil
}

func (f *fakeBackend) CreateVM(_ context.Context, req api.CreateVMRequest) (*api.VM, error) {
	if err := f.record("create %s", req.Name); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, req)
	vm := api.VM{ID: "vm_new", Name: req.Name, Template: req.Template, CPU: req.CPU, MemoryMB: req.MemoryMB, DiskGB: req.DiskGB, State: api.StatePending, CreatedAt: t0}
	f.vms = append(f.vms, vm)
	return &vm, nil
}

func (f *fakeBackend) power(verb, id string, st api.State) (*api.VM, error) {
	if err := f.record("%s %s", verb, id); err != nil {
		return nil, err
	}
	vm, err := f.find(id)
	if err != nil {
		return nil, err
	}
	vm.State = st
	return vm, nil
}

func (f *fakeBackend) StartVM(_ context.Context, id string) (*api.VM, error) {
	return f.power("start", id, api.StateStarting)
}

func (f *fakeBackend) StopVM(_ context.Context, id string, force bool) (*api.VM, error) {
	verb := "stop"
	if force {
		verb = "stop --force"
	}
	return f.power(verb, id, api.StateStopping)
}

func (f *fakeBackend) DeleteVM(_ context.Context, id string) (*api.VM, error) {
	return f.power("delete", id, api.StateDeleting)
}

func (f *fakeBackend) Console(_ context.Context, id string) (*api.ConsoleResponse, error) {
	if err := f.record("console %s", id); err != nil {
		return nil, err
	}
	return &api.ConsoleResponse{URL: "http://vmd.test/console/" + id + "?token=t"}, nil
}

func (f *fakeBackend) Events(ctx context.Context, after int64) (<-chan Change, <-chan error) {
	_ = f.record("events after %d", after)
	out := make(chan Change)
	go func() {
		defer close(out)
		for {
			select {
			case c := <-f.changes:
				select {
				case out <- c:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, f.errs
}

// asciiRenderer renders without colour, as under NO_COLOR.
func asciiRenderer() *lipgloss.Renderer {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	return r
}

// testModel is the dashboard over f with a fixed clock and no colour.
func testModel(t *testing.T, f *fakeBackend, opened *[]string) Model {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	open := func(url string) error {
		if opened != nil {
			*opened = append(*opened, url)
		}
		return errors.New("no display")
	}
	return New(ctx, f, Options{
		Server: "http://vmd.test", Now: func() time.Time { return t0 }, Open: open,
		Renderer: asciiRenderer(), Tick: time.Hour, Resync: -1,
	})
}

func (f *fakeBackend) GetVM(_ context.Context, id string) (*api.VM, error) {
	vm, err := f.find(id)
	if err != nil {
		return nil, err
	}
	vm.Events = []api.VMEvent{
		{Time: t0.Add(-5 * time.Minute), State: api.StateProvisioning, Message: "created"},
		{Time: t0.Add(-4 * time.Minute), State: api.StateStarting},
		{Time: t0.Add(-4*time.Minute + 2*time.Second), State: api.StateRunning, Message: "qemu running"},
	}
	return vm, nil
}

func (f *fakeBackend) Logs(_ context.Context, id string, tail int, follow bool) (io.ReadCloser, error) {
	if err := f.record("logs %s tail=%d follow=%v", id, tail, follow); err != nil {
		return nil, err
	}
	// What a guest prints: CRLF line ends and a colour escape, which the view drops.
	return io.NopCloser(strings.NewReader("vmd-tiny: boot 1\r\nvmd-tiny: booted\r\n\x1b[1;32mvmd-tiny:~# \x1b[0mecho hi\r\nhi\r\n")), nil
}
