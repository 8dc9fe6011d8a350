package tui

import (
	"context"
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
// a shell in the guest (Options.Shell) and comes back here when it ends.

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
		name string
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
		if msg.err != nil {
			return m.fail("shell in "+msg.name, msg.err), m.refreshCmd(), true
		}
		return m.setStatus("shell in " + msg.name + " ended"), m.refreshCmd(), true
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
		return m.shell(m.detail.name)
	}
	return m, nil
}

// shell hands the terminal to a shell in the guest and comes back to the
// table when it ends.
func (m Model) shell(name string) (Model, tea.Cmd) {
	if m.opts.Shell == nil {
		return m.setStatus("for a shell run: vmctl console " + name + " --serial"), nil
	}
	cmd := m.opts.Shell(name)
	m.detail.gen++ // no polls while the shell has the screen
	m = m.setStatus("shell in " + name + " (Ctrl-] detaches)…")
	return m, tea.ExecProcess(cmd, func(err error) tea.Msg { return shellDoneMsg{name: name, err: err} })
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
	return m.help.ShortHelpView([]key.Binding{k.Logs, k.Shell, k.Back, k.Quit})
}

// ShellCommand is the Options.Shell of vmctl: `vmctl console NAME --serial
// --write` run by the same binary, with the same global flags.
func ShellCommand(ctx context.Context, self string, global []string) func(name string) *exec.Cmd {
	return func(name string) *exec.Cmd {
		return exec.CommandContext(ctx, self, append(append([]string{}, global...), "console", name, "--serial", "--write")...)
	}
}
