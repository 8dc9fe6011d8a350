package tui

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/charmbracelet/x/exp/golden"
)

// run feeds a Cmd's message (and a batch's) back into the model, one level.
func runCmds(t *testing.T, m Model, msgs ...any) Model {
	t.Helper()
	for _, msg := range msgs {
		m = update(t, m, msg)
	}
	return m
}

// detailOf opens the detail view of the selected VM with its data loaded,
// as the program would after Enter.
func detailOf(t *testing.T, f *fakeBackend, keys ...string) Model {
	t.Helper()
	m := loaded(t, f, nil)
	m = press(t, m, keys...)
	if m.mode != modeDetail {
		t.Fatalf("mode %d after %v, want the detail view", m.mode, keys)
	}
	return runCmds(t, m, m.loadDetail()(), m.loadLog()())
}

func TestDetailView(t *testing.T) {
	f := newFake()
	m := detailOf(t, f, "enter")
	if m.detail.name != "build" { // the table is sorted by name
		t.Fatalf("detail of %q", m.detail.name)
	}
	view := m.View()
	for _, want := range []string{"Events", "qemu running", "Serial log", "vmd-tiny: booted", "hi"} {
		if !strings.Contains(view, want) {
			t.Errorf("detail view lacks %q:\n%s", want, view)
		}
	}
	if strings.Contains(view, "\x1b[1;32m") || strings.Contains(view, "\r") {
		t.Errorf("the guest's escapes reached the screen: %q", view)
	}
	if !slices.Contains(f.Calls(), "logs vm_03 tail=200 follow=false") {
		t.Errorf("calls %v", f.Calls())
	}
	golden.RequireEqual(t, []byte(view))

	// A poll of an earlier view is dropped; esc goes back to the table.
	stale := logMsg{gen: m.detail.gen - 1, lines: []string{"stale"}}
	if strings.Contains(update(t, m, stale).View(), "stale") {
		t.Fatal("a stale poll was shown")
	}
	m = press(t, m, "esc")
	if m.mode != modeTable {
		t.Fatalf("esc: mode %d", m.mode)
	}
	if next, _ := m.Update(detailTickMsg{gen: m.detail.gen - 1}); next.(Model).mode != modeTable {
		t.Fatal("an old poll reopened the view")
	}
}

func TestDetailLogsOnly(t *testing.T) {
	f := newFake()
	m := detailOf(t, f, "down", "l")
	if !m.detail.logsOnly {
		t.Fatal("l did not open the log")
	}
	golden.RequireEqual(t, []byte(m.View()))
	m = press(t, m, "l") // l again: the whole detail view
	if m.detail.logsOnly || !strings.Contains(m.View(), "Events") {
		t.Fatalf("l did not toggle back:\n%s", m.View())
	}
}

func TestDetailShell(t *testing.T) {
	f := newFake()
	m := loaded(t, f, nil)
	m = press(t, m, "e")
	if !strings.Contains(m.status, "vmctl console build --serial") {
		t.Fatalf("without a shell command, e says %q", m.status)
	}
	var asked []string
	m.opts.Shell = func(name string) *exec.Cmd { asked = append(asked, name); return exec.Command("true") }
	next, cmd := m.Update(keyMsg("enter"))
	m = next.(Model)
	if cmd == nil {
		t.Fatal("enter gave no command")
	}
	next, cmd = m.Update(keyMsg("e"))
	m = next.(Model)
	if cmd == nil || !slices.Equal(asked, []string{"build"}) {
		t.Fatalf("e ran %v", asked)
	}
	m = update(t, m, shellDoneMsg{name: "build"})
	if m.mode != modeTable || m.status != "shell in build ended" {
		t.Fatalf("after the shell: mode %d, status %q", m.mode, m.status)
	}
}
