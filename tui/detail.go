package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/vmdhq/vmd/pkg/api"
)

// The detail view of one VM (Enter on the table, as k9s describes a
// resource): its sizes and state, its events and the tail of its serial
// log, re-read every detailPoll while shown. l shows the log alone, e runs
// a shell in the guest (Options.Shell: ssh or the agent's shell) and a its
// serial console (Options.Serial); both come back to the table when they
// end.

// detailPoll is how often the shown VM and its log are read again.
const detailPoll = time.Second

// Bounds of what the detail view fetches and shows.
const (
	detailTail   = 200 // log lines fetched each poll
	detailEvents = 5   // newest events shown
	maxLogBytes  = 64 << 10
)

// detailState is the VM the detail view shows.
type detailState struct {
	id, name string
	vm       *api.VM
	log      []string
	logsOnly bool // l: the log fills the screen
	gen      int  // tells this view's polls from an earlier one's
}

type (
	detailMsg struct {
		gen int
		vm  *api.VM
		err error
	}
	logMsg struct {
		gen   int
		lines []string
		err   error
	}
	detailTickMsg struct{ gen int }
	shellDoneMsg  struct {
		what string // "shell in web"
		err  error
	}
)

// openDetail shows vm's detail view and starts its polls.
func (m Model) openDetail(vm api.VM) (Model, tea.Cmd) {
	m.mode = modeDetail
	m.detail = detailState{id: vm.ID, name: vm.Name, vm: &vm, gen: m.detail.gen + 1}
	return m, tea.Batch(m.loadDetail(), m.loadLog(), m.detailTick())
}

func (m Model) detailTick() tea.Cmd {
	gen := m.detail.gen
	return tea.Tick(detailPoll, func(time.Time) tea.Msg { return detailTickMsg{gen: gen} })
}

func (m Model) loadDetail() tea.Cmd {
	b, ctx, id, gen := m.b, m.ctx, m.detail.id, m.detail.gen
	return func() tea.Msg {
		vm, err := b.GetVM(ctx, id)
		return detailMsg{gen: gen, vm: vm, err: err}
	}
}

func (m Model) loadLog() tea.Cmd {
	b, ctx, id, gen := m.b, m.ctx, m.detail.id, m.detail.gen
	return func() tea.Msg {
		body, err := b.Logs(ctx, id, detailTail, false)
		if err != nil {
			return logMsg{gen: gen, err: err}
		}
		defer body.Close()
		data, err := io.ReadAll(io.LimitReader(body, maxLogBytes))
		return logMsg{gen: gen, lines: logLines(data), err: err}
	}
}

// logLines makes a serial log printable: no carriage returns, escape
// sequences or other control characters a guest may have written.
func logLines(data []byte) []string {
	s := ansi.Strip(string(data))
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

// detailUpdate handles the detail view's messages; ok is false for others.
func (m Model) detailUpdate(msg tea.Msg) (Model, tea.Cmd, bool) {
	switch msg := msg.(type) {
	case detailTickMsg:
		if m.mode != modeDetail || msg.gen != m.detail.gen {
			return m, nil, true
		}
		return m, tea.Batch(m.loadDetail(), m.loadLog(), m.detailTick()), true
	case detailMsg:
		if msg.gen != m.detail.gen {
			return m, nil, true
		}
		if msg.err != nil {
			return m.fail("get "+m.detail.name, msg.err), nil, true
		}
		m.detail.vm = msg.vm
		return m, nil, true
	case logMsg:
		if msg.gen != m.detail.gen {
			return m, nil, true
		}
		if msg.err != nil {
			return m.fail("logs of "+m.detail.name, msg.err), nil, true
		}
		m.detail.log = msg.lines
		return m, nil, true
	case shellDoneMsg:
		m.mode = modeTable
		var exit *exec.ExitError
		switch {
		case errors.As(msg.err, &exit) && exit.ExitCode() > 0:
			// A shell ends with its last command's status: not the TUI's error.
			return m.setStatus(fmt.Sprintf("%s ended (exit status %d)", msg.what, exit.ExitCode())), m.refreshCmd(), true
		case msg.err != nil:
			return m.fail(msg.what, msg.err), m.refreshCmd(), true
		}
		return m.setStatus(msg.what + " ended"), m.refreshCmd(), true
	}
	return m, nil, false
}

// refreshCmd lists the VMs again (the screen was another program's meanwhile).
func (m Model) refreshCmd() tea.Cmd {
	_, c := m.refresh()
	return c
}

// detailKey handles a key in the detail view.
func (m Model) detailKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	k := m.keys
	switch {
	case key.Matches(msg, k.Back):
		if m.detail.logsOnly {
			m.detail.logsOnly = false
			return m, nil
		}
		m.mode = modeTable
		m.detail.gen++ // stops the polls
		return m, nil
	case key.Matches(msg, k.Quit):
		return m, tea.Quit
	case key.Matches(msg, k.Logs):
		m.detail.logsOnly = !m.detail.logsOnly
		return m, nil
	case key.Matches(msg, k.Shell):
		return m.shell(m.shownVM())
	case key.Matches(msg, k.Serial):
		return m.serial(m.detail.name)
	}
	return m, nil
}

// shell hands the terminal to a shell in vm (ShellArgs says which) and
// comes back to the table when it ends.
func (m Model) shell(vm api.VM) (Model, tea.Cmd) {
	user := m.sshUser(vm.Template)
	if m.opts.Shell == nil {
		return m.setStatus("for a shell run: vmctl " + strings.Join(ShellArgs(vm, user), " ")), nil
	}
	how := "exec, one line at a time; exit or Ctrl-D ends it"
	if UseSSH(vm, user) {
		how = "ssh"
	}
	return m.handOver("shell in "+vm.Name, how, m.opts.Shell(vm, user))
}

// serial hands the terminal to the VM's serial console (a).
func (m Model) serial(name string) (Model, tea.Cmd) {
	if m.opts.Serial == nil {
		return m.setStatus("for the serial console run: vmctl console " + name + " --serial --write"), nil
	}
	return m.handOver("serial console of "+name, "Ctrl-] detaches", m.opts.Serial(name))
}

// handOver gives the terminal to cmd, "what" (how: a hint) until it ends.
func (m Model) handOver(what, how string, cmd *exec.Cmd) (Model, tea.Cmd) {
	m.detail.gen++ // no polls while the other program has the screen
	m = m.setStatus(what + " (" + how + ")…")
	return m, tea.ExecProcess(cmd, func(err error) tea.Msg { return shellDoneMsg{what: what, err: err} })
}

// sshUser is template's login user, "" when unknown.
func (m Model) sshUser(template string) string {
	for _, t := range m.templates {
		if t.Name == template {
			return t.SSHUser
		}
	}
	return ""
}

// shownVM is the VM the detail view shows: the last one it read, else the
// table's.
func (m Model) shownVM() api.VM {
	if m.detail.vm != nil {
		return *m.detail.vm
	}
	for _, vm := range m.vms {
		if vm.ID == m.detail.id {
			return vm
		}
	}
	return api.VM{ID: m.detail.id, Name: m.detail.name}
}

// detailView renders the detail view's body in height lines.
func (m Model) detailView(height int) string {
	d := m.detail
	vm := d.vm
	if vm == nil {
		return m.st.dim.Render("loading " + d.name + "…")
	}
	head := m.st.title.Render(vm.Name) + "  " + m.st.state(vm.State).Render(string(vm.State))
	if vm.Message != "" {
		head += m.st.dim.Render("  " + vm.Message)
	}
	logTitle := m.st.title.Render("Serial log")
	if d.logsOnly {
		return strings.Join(append([]string{head + "  " + logTitle}, lastN(d.log, height-1)...), "\n")
	}
	lines := []string{
		head,
		fmt.Sprintf("%s  template %s  %d CPU  %s memory  %d GB disk  node %s  age %s",
			m.st.dim.Render(vm.ID), vm.Template, vm.CPU, fmt.Sprintf("%dMB", vm.MemoryMB), vm.DiskGB,
			orDash(vm.Node), age(m.now, vm.CreatedAt)),
		"",
		m.st.title.Render("Events"),
	}
	evs := vm.Events
	if len(evs) > detailEvents {
		evs = evs[len(evs)-detailEvents:]
	}
	if len(evs) == 0 {
		lines = append(lines, m.st.dim.Render("  none"))
	}
	for _, e := range evs {
		lines = append(lines, fmt.Sprintf("  %s  %-12s %s", e.Time.In(m.now.Location()).Format("15:04:05"), e.State, e.Message))
	}
	lines = append(lines, "", logTitle)
	lines = append(lines, lastN(d.log, height-len(lines))...)
	return strings.Join(lines, "\n")
}

func lastN(lines []string, n int) []string {
	if n <= 0 {
		return nil
	}
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// detailHelp is the hint line of the detail view.
func (m Model) detailHelp() string {
	k := m.keys
	return m.help.ShortHelpView([]key.Binding{k.Logs, k.Shell, k.Serial, k.Back, k.Quit})
}

// UseSSH says whether e reaches vm by ssh: it has vmd's network, an
// address, and its template names the user to log in as.
func UseSSH(vm api.VM, sshUser string) bool {
	return vm.Network == api.NetworkNAT && len(vm.Addresses) > 0 && sshUser != ""
}

// ShellArgs is the vmctl command line (without global flags) of e's shell
// in vm: `ssh NAME -l USER` where UseSSH, otherwise `shell NAME`, the
// guest agent's line-at-a-time shell (no network, no terminal in the
// guest).
func ShellArgs(vm api.VM, sshUser string) []string {
	if UseSSH(vm, sshUser) {
		return []string{"ssh", vm.Name, "-l", sshUser}
	}
	return []string{"shell", vm.Name}
}

// ShellCommand is the Options.Shell of vmctl: ShellArgs run by the same
// binary, with the same global flags.
func ShellCommand(ctx context.Context, self string, global []string) func(vm api.VM, sshUser string) *exec.Cmd {
	return func(vm api.VM, sshUser string) *exec.Cmd {
		return exec.CommandContext(ctx, self, append(append([]string{}, global...), ShellArgs(vm, sshUser)...)...)
	}
}

// SerialCommand is the Options.Serial of vmctl: `vmctl console NAME
// --serial --write`.
func SerialCommand(ctx context.Context, self string, global []string) func(name string) *exec.Cmd {
	return func(name string) *exec.Cmd {
		return exec.CommandContext(ctx, self, append(append([]string{}, global...), "console", name, "--serial", "--write")...)
	}
}
