package tui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/muesli/termenv"

	"github.com/vmdhq/vmd/pkg/api"
)

func keyMsg(s string) tea.KeyMsg {
	switch s {
	case "enter":
		return tea.KeyMsg{Type: tea.KeyEnter}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	case "tab":
		return tea.KeyMsg{Type: tea.KeyTab}
	case "shift+tab":
		return tea.KeyMsg{Type: tea.KeyShiftTab}
	case "up":
		return tea.KeyMsg{Type: tea.KeyUp}
	case "down":
		return tea.KeyMsg{Type: tea.KeyDown}
	case "left":
		return tea.KeyMsg{Type: tea.KeyLeft}
	case "right":
		return tea.KeyMsg{Type: tea.KeyRight}
	case "backspace":
		return tea.KeyMsg{Type: tea.KeyBackspace}
	case "pgdown":
		return tea.KeyMsg{Type: tea.KeyPgDown}
	case "pgup":
		return tea.KeyMsg{Type: tea.KeyPgUp}
	case "ctrl+s":
		return tea.KeyMsg{Type: tea.KeyCtrlS}
	case "ctrl+c":
		return tea.KeyMsg{Type: tea.KeyCtrlC}
	case " ":
		return tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}

// loaded is the model after its first listings arrived, driven by hand.
func loaded(t *testing.T, f *fakeBackend, opened *[]string) Model {
	t.Helper()
	m := testModel(t, f, opened)
	ctx := context.Background()
	vms, _ := f.ListVMs(ctx, false)
	u, _ := f.Me(ctx)
	ts, _ := f.Templates(ctx)
	for _, msg := range []tea.Msg{tea.WindowSizeMsg{Width: 100, Height: 20}, vmsMsg{vms: vms}, userMsg{user: u}, templatesMsg{templates: ts}} {
		m = update(t, m, msg)
	}
	return m
}

func update(t *testing.T, m Model, msg tea.Msg) Model {
	t.Helper()
	next, _ := m.Update(msg)
	return next.(Model)
}

// press sends keys and runs the Cmds they return (one level deep), feeding
// their messages back in, as the program would.
func press(t *testing.T, m Model, keys ...string) Model {
	t.Helper()
	for _, k := range keys {
		next, cmd := m.Update(keyMsg(k))
		m = next.(Model)
		if cmd == nil {
			continue
		}
		if msg := cmd(); msg != nil {
			if _, quit := msg.(tea.QuitMsg); !quit {
				m = update(t, m, msg)
			}
		}
	}
	return m
}

func TestInitialView(t *testing.T) {
	f := newFake()
	tm := teatest.NewTestModel(t, testModel(t, f, nil), teatest.WithInitialTermSize(100, 20))
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		return bytes.Contains(b, []byte("ada@example.com")) && bytes.Contains(b, []byte("provisioning"))
	}, teatest.WithDuration(5*time.Second))
	tm.Send(keyMsg("q"))
	final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(Model)
	golden.RequireEqual(t, []byte(final.View()))
}

func TestChangeRerendersWithoutKeyPress(t *testing.T) {
	f := newFake()
	tm := teatest.NewTestModel(t, testModel(t, f, nil), teatest.WithInitialTermSize(100, 20))
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("provisioning")) },
		teatest.WithDuration(5*time.Second))
	f.changes <- Change{ID: 7, VMID: "vm_04", VMName: "cache", State: api.StateStarting}
	f.changes <- Change{ID: 8, VMID: "vm_04", VMName: "cache", State: api.StateRunning, DesiredState: api.DesiredRunning}
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		return bytes.Contains(b, []byte("cache  running"))
	}, teatest.WithDuration(5*time.Second))
	if err := tm.Quit(); err != nil {
		t.Fatal(err)
	}
	final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(Model)
	if final.lastEventID != 8 {
		t.Fatalf("last event id %d, want 8", final.lastEventID)
	}
	if strings.Contains(final.View(), "provisioning") {
		t.Fatalf("still provisioning:\n%s", final.View())
	}
}

func TestStopKeyCallsStopVM(t *testing.T) {
	f := newFake()
	tm := teatest.NewTestModel(t, testModel(t, f, nil), teatest.WithInitialTermSize(100, 20))
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("provisioning")) },
		teatest.WithDuration(5*time.Second))
	// Rows sort by name: build, cache, db, web; G selects web.
	tm.Type("Gx")
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte("stop web: accepted")) },
		teatest.WithDuration(5*time.Second))
	if err := tm.Quit(); err != nil {
		t.Fatal(err)
	}
	tm.WaitFinished(t, teatest.WithFinalTimeout(5*time.Second))
	if !containsCall(f.Calls(), "stop vm_01") {
		t.Fatalf("calls %q lack stop vm_01", f.Calls())
	}
}

func containsCall(calls []string, want string) bool {
	for _, c := range calls {
		if c == want {
			return true
		}
	}
	return false
}

func TestActionKeys(t *testing.T) {
	for _, tc := range []struct {
		name   string
		keys   []string
		calls  []string
		status string
	}{
		{"start", []string{"s"}, []string{"start vm_03"}, "start build: accepted"},
		{"stop", []string{"x"}, []string{"stop vm_03"}, "stop build: accepted"},
		{"force stop", []string{"j", "X"}, []string{"stop --force vm_04"}, "force stop cache: accepted"},
		{"delete confirmed", []string{"G", "d", "y"}, []string{"delete vm_01"}, "delete web: accepted"},
		{"delete declined", []string{"d", "n"}, nil, "delete cancelled"},
		{"console", []string{"c"}, []string{"console vm_03"}, "console URL: http://vmd.test/console/vm_03?token=t"},
		{"tunnel hint", []string{"t"}, nil, "vmctl console build --tunnel"},
		{"filtered", []string{"/", "d", "b", "enter", "x"}, []string{"stop vm_02"}, "stop db: accepted"},
		{"filter matches nothing", []string{"/", "z", "enter", "x"}, nil, "no VM selected"},
		{"help then quit", []string{"?", "q", "q"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			var opened []string
			m := press(t, loaded(t, f, &opened), tc.keys...)
			if got := f.Calls(); (len(got) > 0 || len(tc.calls) > 0) && !reflect.DeepEqual(got, tc.calls) {
				t.Fatalf("calls %q, want %q", got, tc.calls)
			}
			if !strings.Contains(m.status, tc.status) {
				t.Fatalf("status %q lacks %q", m.status, tc.status)
			}
			if tc.name == "console" && len(opened) != 1 {
				t.Fatalf("opened %q", opened)
			}
		})
	}
}

func TestActionErrorInStatusLine(t *testing.T) {
	f := newFake()
	f.failWith = errors.New("conflict:\nvm is busy")
	m := press(t, loaded(t, f, nil), "x")
	if !m.statusErr || !strings.Contains(m.View(), "error: stop build: conflict: vm is busy") {
		t.Fatalf("view:\n%s", m.View())
	}
}

func TestCreateForm(t *testing.T) {
	type fields struct{ name, cpu, mem, disk string }
	for _, tc := range []struct {
		name    string
		in      fields
		tmplKey []string
		errs    []string
		want    *api.CreateVMRequest
	}{
		{name: "valid", in: fields{"api", "1", "512", "2"}, tmplKey: []string{"right"},
			want: &api.CreateVMRequest{Name: "api", Template: "tiny", CPU: 1, MemoryMB: 512, DiskGB: 2}},
		{name: "defaults", in: fields{name: "x1"},
			want: &api.CreateVMRequest{Name: "x1", Template: "debian", CPU: 1, MemoryMB: 256, DiskGB: 1}},
		{name: "empty name", in: fields{}, errs: []string{"a name is required"}},
		{name: "bad name", in: fields{name: "Web_1"}, errs: []string{"use lower-case letters"}},
		{name: "not a number", in: fields{"a", "two", "", ""}, errs: []string{"must be a whole number"}},
		{name: "too little memory", in: fields{"a", "", "16", ""}, errs: []string{"must be between 64 and 262144"}},
		{name: "over cpu quota", in: fields{"a", "4", "", ""}, errs: []string{"over your quota: 3 of 8 left"}},
		{name: "over disk quota", in: fields{"a", "", "", "30"}, errs: []string{"over your quota: 27GB of 50GB left"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			m := press(t, loaded(t, f, nil), "n")
			if m.mode != modeCreate {
				t.Fatalf("mode %d", m.mode)
			}
			typeField := func(v string) {
				if v == "" {
					m = press(t, m, "tab")
					return
				}
				for range 8 {
					m = press(t, m, "backspace")
				}
				for _, r := range v {
					m = press(t, m, string(r))
				}
				m = press(t, m, "tab")
			}
			typeField(tc.in.name)
			m = press(t, m, tc.tmplKey...)
			m = press(t, m, "tab")
			typeField(tc.in.cpu)
			typeField(tc.in.mem)
			typeField(tc.in.disk)
			m = press(t, m, "ctrl+s")
			view := m.View()
			for _, e := range tc.errs {
				if !strings.Contains(view, e) {
					t.Fatalf("view lacks %q:\n%s", e, view)
				}
			}
			if tc.want == nil {
				if len(f.created) != 0 || m.mode != modeCreate {
					t.Fatalf("created %v with errors; mode %d", f.created, m.mode)
				}
				return
			}
			if len(f.created) != 1 || !reflect.DeepEqual(f.created[0], *tc.want) {
				t.Fatalf("created %+v, want %+v\n%s", f.created, *tc.want, view)
			}
			if m.mode != modeTable || !strings.Contains(m.status, "created vm "+tc.want.Name) || m.selectedID != "vm_new" {
				t.Fatalf("after create: mode %d status %q selected %q", m.mode, m.status, m.selectedID)
			}
		})
	}
}

func TestCreateServerErrorKeepsForm(t *testing.T) {
	f := newFake()
	f.failWith = errors.New("quota_exceeded: no VMs left")
	m := press(t, loaded(t, f, nil), "n", "a", "ctrl+s")
	if m.mode != modeCreate || !strings.Contains(m.View(), "create: quota_exceeded: no VMs left") {
		t.Fatalf("mode %d view:\n%s", m.mode, m.View())
	}
	m = press(t, m, "esc")
	if m.mode != modeTable {
		t.Fatalf("esc left mode %d", m.mode)
	}
}

func TestChanges(t *testing.T) {
	f := newFake()
	m := loaded(t, f, nil)
	m = update(t, m, changeMsg{ID: 3, VMID: "vm_01", State: api.StateStopping, Message: "shutting down"})
	if m.vms[m.index("vm_01")].State != api.StateStopping || m.lastEventID != 3 {
		t.Fatalf("change not applied: %+v", m.vms)
	}
	m = update(t, m, changeMsg{ID: 4, VMID: "vm_01", State: StateDeleted})
	if m.index("vm_01") >= 0 {
		t.Fatal("deleted VM still listed")
	}
	next, cmd := m.Update(changeMsg{ID: 5, VMID: "vm_99", VMName: "new", State: api.StatePending})
	if !next.(Model).refreshing || cmd == nil {
		t.Fatal("a change for an unknown VM did not refresh the list")
	}
}

func TestStreamReconnects(t *testing.T) {
	f := newFake()
	m := loaded(t, f, nil)
	m.lastEventID = 41
	m = update(t, m, streamEndMsg{err: errors.New("connection reset")})
	if !strings.Contains(m.View(), "error: change feed: connection reset") {
		t.Fatalf("view:\n%s", m.View())
	}
	next, cmd := m.Update(reconnectMsg{})
	if cmd == nil {
		t.Fatal("no reconnect")
	}
	msg, ok := cmd().(streamMsg)
	if !ok || !containsCall(f.Calls(), "events after 41") {
		t.Fatalf("feed not reopened after 41: %q", f.Calls())
	}
	// Changes may have been missed while the feed was down.
	next, cmd = next.Update(msg)
	if !next.(Model).refreshing || cmd == nil {
		t.Fatal("no listing after the feed reopened")
	}
}

func TestStateColours(t *testing.T) {
	f := newFake()
	m := loaded(t, f, nil)
	if v := m.View(); strings.Contains(v, "\x1b[3") {
		t.Fatalf("ascii renderer printed colour:\n%q", v)
	}
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.ANSI)
	m.st = newStyles(r)
	v := m.View()
	for state, sgr := range map[string]string{"running": "32", "error": "31", "stopped": "90", "provisioning": "33"} {
		if !strings.Contains(v, "\x1b["+sgr+"m"+state) {
			t.Errorf("%s not in colour %s:\n%q", state, sgr, v)
		}
	}
}

func TestResize(t *testing.T) {
	f := newFake()
	m := loaded(t, f, nil)
	for _, size := range [][2]int{{40, 10}, {200, 50}, {1, 1}, {0, 0}, {-5, -5}} {
		m = update(t, m, tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		lines := strings.Split(m.View(), "\n")
		if len(lines) > max(size[1], 2) {
			t.Fatalf("%v: %d lines", size, len(lines))
		}
		for _, l := range lines {
			if w := lipgloss.Width(l); w > max(size[0], 1) {
				t.Fatalf("%v: line %q is %d wide", size, l, w)
			}
		}
	}
}

// TestUpdateNeverPanics throws random keys and messages at Update and View.
func TestUpdateNeverPanics(t *testing.T) {
	keys := []string{"s", "x", "X", "d", "y", "n", "c", "t", "/", "?", "r", "q", "j", "k", "g", "G",
		"enter", "esc", "tab", "shift+tab", "up", "down", "left", "right", "backspace", "pgup", "pgdown",
		"ctrl+s", " ", "a", "1", "-", "é"}
	vm := api.VM{ID: "vm_01", Name: "web"}
	msgs := []tea.Msg{
		tea.WindowSizeMsg{Width: 0, Height: 0}, tea.WindowSizeMsg{Width: 30, Height: 5}, tea.WindowSizeMsg{Width: 120, Height: 40},
		vmsMsg{}, vmsMsg{err: errors.New("boom")}, vmsMsg{vms: []api.VM{vm, vm}},
		userMsg{}, userMsg{user: &api.User{}}, userMsg{err: errors.New("x")},
		templatesMsg{}, templatesMsg{err: errors.New("x")},
		streamMsg{}, changeMsg{}, changeMsg{VMID: "vm_01", State: StateDeleted}, changeMsg{VMID: "vm_02", State: api.StateError},
		streamEndMsg{}, streamEndMsg{err: errors.New("eof")}, reconnectMsg{}, tickMsg(t0),
		actionDoneMsg{}, actionDoneMsg{verb: "delete", vm: &vm}, actionDoneMsg{err: errors.New("x")},
		createdMsg{}, createdMsg{vm: &vm}, createdMsg{err: errors.New("x")},
		consoleMsg{}, consoleMsg{err: errors.New("x")}, consoleMsg{openErr: errors.New("x")},
		nil, 42, struct{}{}, tea.MouseMsg{},
	}
	rng := rand.New(rand.NewSource(1))
	for run := 0; run < 100; run++ {
		var m Model
		if run%2 == 0 {
			m = loaded(t, newFake(), nil)
		} else {
			m = testModel(t, newFake(), nil)
		}
		var trail []string
		for step := 0; step < 60; step++ {
			var msg tea.Msg
			if rng.Intn(3) == 0 {
				msg = msgs[rng.Intn(len(msgs))]
			} else {
				msg = keyMsg(keys[rng.Intn(len(keys))])
			}
			trail = append(trail, fmt.Sprintf("%T%v", msg, msg))
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("run %d panicked after %v: %v", run, trail, r)
					}
				}()
				next, _ := m.Update(msg)
				m = next.(Model)
				_ = m.View()
			}()
		}
	}
}

// t starts a VNC tunnel to the selected VM and shows where to connect; a
// second t stops it.
func TestTunnelKeyTogglesTunnel(t *testing.T) {
	f := newFake()
	m := loaded(t, f, nil)
	var started []string
	stopped := 0
	m.opts.Tunnel = func(_ context.Context, id string) (string, func(), error) {
		started = append(started, id)
		return "127.0.0.1:5901", func() { stopped++ }, nil
	}
	m = press(t, m, "t")
	if len(started) != 1 || started[0] != "vm_03" || !strings.Contains(m.status, "connect a VNC viewer to 127.0.0.1:5901") {
		t.Fatalf("started %v, status %q", started, m.status)
	}
	m = press(t, m, "t")
	if stopped != 1 || !strings.Contains(m.status, "stopped") {
		t.Fatalf("stopped %d, status %q", stopped, m.status)
	}
	m.opts.Tunnel = func(context.Context, string) (string, func(), error) { return "", nil, errors.New("vm is not running") }
	m = press(t, m, "t")
	if !m.statusErr || !strings.Contains(m.status, "vm is not running") {
		t.Fatalf("status %q", m.status)
	}
}
