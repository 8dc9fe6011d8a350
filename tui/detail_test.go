package tui

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/charmbracelet/x/exp/golden"

	"github.com/vmdhq/vmd/pkg/api"
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
	f.templates = []api.Template{{Name: "debian", SSHUser: "debian"}, {Name: "tiny", SSHUser: "root"}}
	f.vms[2].Network, f.vms[2].Addresses = api.NetworkNAT, []string{"192.168.127.2/24"}
	m := loaded(t, f, nil)
	m = press(t, m, "e")
	if !strings.Contains(m.status, "vmctl ssh build -l root") {
		t.Fatalf("without a shell command, e says %q", m.status)
	}
	m = press(t, m, "a")
	if !strings.Contains(m.status, "vmctl console build --serial") {
		t.Fatalf("without a serial command, a says %q", m.status)
	}
	var asked []string
	m.opts.Shell = func(vm api.VM, user string) *exec.Cmd {
		asked = append(asked, vm.Name+" "+user+" "+vm.Addresses[0])
		return exec.Command("true")
	}
	m.opts.Serial = func(name string) *exec.Cmd { asked = append(asked, "serial "+name); return exec.Command("true") }
	next, cmd := m.Update(keyMsg("enter"))
	m = next.(Model)
	if cmd == nil {
		t.Fatal("enter gave no command")
	}
	next, cmd = m.Update(keyMsg("e"))
	m = next.(Model)
	if cmd == nil || !slices.Equal(asked, []string{"build root 192.168.127.2/24"}) || !strings.Contains(m.status, "(ssh)") {
		t.Fatalf("e ran %v, status %q", asked, m.status)
	}
	m = update(t, m, shellDoneMsg{what: "shell in build"})
	if m.mode != modeTable || m.status != "shell in build ended" {
		t.Fatalf("after the shell: mode %d, status %q", m.mode, m.status)
	}
	exit7 := exec.Command("sh", "-c", "exit 7").Run()
	m = update(t, m, shellDoneMsg{what: "shell in build", err: exit7})
	if m.status != "shell in build ended (exit status 7)" || m.statusErr {
		t.Fatalf("after a shell that exited 7: status %q (error %v)", m.status, m.statusErr)
	}
	next, cmd = m.Update(keyMsg("a")) // from the table too
	m = next.(Model)
	if cmd == nil || !slices.Equal(asked[1:], []string{"serial build"}) {
		t.Fatalf("a ran %v", asked)
	}
}

// TestShellArgs is e's choice: ssh where the guest has vmd's network, an
// address and a known login user, the agent's shell otherwise.
func TestShellArgs(t *testing.T) {
	nat := api.VM{Name: "web", Network: api.NetworkNAT, Addresses: []string{"192.168.127.2/24"}}
	for _, c := range []struct {
		name string
		vm   api.VM
		user string
		want string
	}{
		{"network, address, user", nat, "debian", "ssh web -l debian"},
		{"no login user known", nat, "", "shell web"},
		{"no address yet", api.VM{Name: "web", Network: api.NetworkNAT}, "root", "shell web"},
		{"no network", api.VM{Name: "web", Network: api.NetworkNone, Addresses: []string{"10.0.0.5/24"}}, "root", "shell web"},
		{"network unknown", api.VM{Name: "web", Addresses: []string{"10.0.0.5/24"}}, "root", "shell web"},
	} {
		if got := strings.Join(ShellArgs(c.vm, c.user), " "); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	cmd := ShellCommand(context.Background(), "/bin/vmctl", []string{"--context", "lab"})(nat, "root")
	if got := strings.Join(cmd.Args, " "); got != "/bin/vmctl --context lab ssh web -l root" {
		t.Errorf("ShellCommand: %q", got)
	}
	cmd = SerialCommand(context.Background(), "/bin/vmctl", nil)("web")
	if got := strings.Join(cmd.Args, " "); got != "/bin/vmctl console web --serial --write" {
		t.Errorf("SerialCommand: %q", got)
	}
}
