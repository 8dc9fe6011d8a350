package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/humanize"
)

// headerLines is what sits above the table: title, two lines of quota
// bars and a blank line; footerLines is the status line and the hint line.
const (
	headerLines = 4
	footerLines = 2
)

// View renders the whole screen, each line cut to the terminal's width.
func (m Model) View() string {
	var body string
	switch m.mode {
	case modeCreate:
		body = m.form.view(m.st)
	case modeDetail:
		body = m.detailView(max(m.height-headerLines-footerLines, 1))
	case modeHelp:
		body = m.st.title.Render("Keys") + "\n\n" + m.help.FullHelpView(m.keys.FullHelp()) +
			"\n\n" + m.st.dim.Render("press any key to go back")
	default:
		body = m.tableView()
	}
	lines := []string{m.titleLine()}
	lines = append(lines, m.quotaLines()...)
	lines = append(lines, "")
	lines = append(lines, strings.Split(body, "\n")...)
	// Keep the footer on the terminal's last lines.
	for len(lines) < m.height-footerLines {
		lines = append(lines, "")
	}
	lines = append(lines, m.statusLine(), m.hintLine())
	if len(lines) > m.height {
		lines = append(lines[:max(m.height-footerLines, 0)], lines[len(lines)-footerLines:]...)
	}
	for i, l := range lines {
		lines[i] = strings.TrimRight(ansi.Truncate(l, m.width, "…"), " ")
	}
	return strings.Join(lines, "\n")
}

func (m Model) titleLine() string {
	t := m.st.title.Render("vmctl tui")
	if m.user != nil {
		t += " " + m.user.Email
	}
	if m.opts.Server != "" {
		t += m.st.dim.Render(" @ " + m.opts.Server)
	}
	n := fmt.Sprintf("%d VMs", len(m.vms))
	if len(m.vms) == 1 {
		n = "1 VM"
	}
	if f := m.filter.Value(); f != "" {
		n = fmt.Sprintf("%d of %d VMs match %q", len(m.visible()), len(m.vms), f)
	}
	return t + m.st.dim.Render("  ·  "+n)
}

func (m Model) quotaLines() []string {
	if m.user == nil {
		return []string{m.st.dim.Render("quota: loading…"), ""}
	}
	q, u := m.user.Quota, m.user.Usage
	w := max((m.width-2)/2, 20)
	return []string{
		m.bar("VMs", u.VMs, q.VMs, "", w) + "  " + m.bar("CPUs", u.CPUs, q.CPUs, "", w),
		m.bar("Memory", u.MemoryMB, q.MemoryMB, "MB", w) + "  " + m.bar("Disk", u.DiskGB, q.DiskGB, "GB", w),
	}
}

// bar draws "Label [█████░░░░░] used/limit" in width cells; the bar is
// green below 70%, yellow below 90% and red above.
func (m Model) bar(label string, used, limit int, unit string, width int) string {
	nums := fmt.Sprintf("%d/%d%s", used, limit, unit)
	if limit <= 0 {
		nums = fmt.Sprintf("%d%s (no limit)", used, unit)
	}
	// The numbers get a fixed column so that the bars line up.
	nums = fmt.Sprintf("%-14s", nums)
	barW := max(width-len(nums)-10, 4)
	frac := 0.0
	if limit > 0 {
		frac = min(max(float64(used)/float64(limit), 0), 1)
	}
	full := int(frac*float64(barW) + 0.5)
	if used > 0 && full == 0 && limit > 0 {
		full = 1
	}
	st := m.st.barLow
	switch {
	case frac >= 0.9:
		st = m.st.barHigh
	case frac >= 0.7:
		st = m.st.barMid
	}
	s := fmt.Sprintf("%-7s[", label) + st.Render(strings.Repeat("█", full)) +
		m.st.barEmpty.Render(strings.Repeat("░", barW-full)) + "] " + nums
	return s
}

var columns = []string{"NAME", "STATE", "TEMPLATE", "CPU", "MEMORY", "NODE", "AGE", "EXPIRES", "SNAPS"}

// tableRows is how many VM rows fit under the table's header.
func (m Model) tableRows() int {
	return max(m.height-headerLines-footerLines-1, 1)
}

func (m Model) tableView() string {
	if !m.loaded {
		return m.st.dim.Render("loading VMs…")
	}
	vis := m.visible()
	if len(vis) == 0 {
		if f := m.filter.Value(); f != "" {
			return m.st.dim.Render(fmt.Sprintf("No VMs match %q. Press esc to clear the filter.", f))
		}
		return m.st.dim.Render("No VMs. Press n to create one.")
	}
	cells := make([][]string, len(vis))
	widths := make([]int, len(columns))
	for i, c := range columns {
		widths[i] = len(c)
	}
	for r, vm := range vis {
		cells[r] = []string{
			vm.Name, string(vm.State), vm.Template, fmt.Sprint(vm.CPU),
			fmt.Sprintf("%dMB", vm.MemoryMB), vm.Node, age(m.now, vm.CreatedAt),
			humanize.Expires(m.now, vm.ExpiresAt), // a countdown: the VM is deleted then
			fmt.Sprint(len(vm.Snapshots)),
		}
		for i, c := range cells[r] {
			widths[i] = max(widths[i], ansi.StringWidth(c))
		}
	}
	row := func(prefix string, cs []string, state api.State, selected bool) string {
		var b strings.Builder
		b.WriteString(prefix)
		for i, c := range cs {
			pad := strings.Repeat(" ", widths[i]-ansi.StringWidth(c))
			switch {
			case i == 1 && state != "":
				c = m.st.state(state).Render(c)
			case selected:
				c = m.st.selected.Render(c)
			}
			if i < len(cs)-1 {
				b.WriteString(c + pad + "  ")
			} else {
				b.WriteString(c)
			}
		}
		return b.String()
	}
	lines := []string{m.st.dim.Render(row("  ", columns, "", false))}
	cur, rows := m.cursor(vis), m.tableRows()
	// Scroll just enough to keep the selection in view.
	off := max(cur-rows+1, 0)
	for r := off; r < len(vis) && r < off+rows; r++ {
		prefix := "  "
		if r == cur {
			prefix = m.st.accent.Render("> ")
		}
		lines = append(lines, row(prefix, cells[r], vis[r].State, r == cur))
	}
	return strings.Join(lines, "\n")
}

func (m Model) statusLine() string {
	switch {
	case m.status == "":
		return ""
	case m.statusErr:
		return m.st.err.Render("error: " + m.status)
	default:
		return m.status
	}
}

func (m Model) hintLine() string {
	switch m.mode {
	case modeConfirm:
		return m.st.err.Render(fmt.Sprintf("Delete vm %s? (y/n)", m.confirmName))
	case modeFilter:
		return m.filter.View() + m.st.dim.Render("   enter keep · esc clear")
	case modeCreate, modeHelp:
		return ""
	case modeDetail:
		return m.detailHelp()
	}
	return m.help.ShortHelpView(m.keys.ShortHelp())
}

// age prints how long ago t was the way kubectl's AGE column does.
func age(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return humanize.Age(now.Sub(t))
}
