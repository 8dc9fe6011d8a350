package tui

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/dnslabel"
)

// Fields of the create form, in tab order.
const (
	fieldName = iota
	fieldTemplate
	fieldCPU
	fieldMemory
	fieldDisk
	numFields
)

var fieldLabels = [numFields]string{"Name", "Template", "CPUs", "Memory MB", "Disk GB"}

// createForm collects a CreateVMRequest. The template is picked from a list;
// the other fields are text inputs (inputs[fieldTemplate] is unused).
type createForm struct {
	inputs    [numFields]textinput.Model
	templates []string
	tmpl      int
	focus     int
	errs      [numFields]string
	// serverErr is the server's answer to the last submit.
	serverErr  string
	submitting bool
}

func newCreateForm(templates []api.Template, st styles) createForm {
	f := createForm{}
	for _, t := range templates {
		f.templates = append(f.templates, t.Name)
	}
	defaults := [numFields]string{fieldCPU: strconv.Itoa(api.DefaultCPU), fieldMemory: strconv.Itoa(api.DefaultMemoryMB), fieldDisk: strconv.Itoa(api.DefaultDiskGB)}
	for i := range f.inputs {
		in := textinput.New()
		in.Prompt = ""
		in.CharLimit = 63
		in.Width = 30
		// A blinking cursor would repaint twice a second for nothing.
		in.Cursor.SetMode(cursor.CursorStatic)
		in.PromptStyle, in.TextStyle = st.plain, st.plain
		in.PlaceholderStyle, in.CompletionStyle = st.dim, st.dim
		in.Cursor.Style, in.Cursor.TextStyle = st.cursor, st.plain
		if i != fieldName {
			in.CharLimit = 7
		}
		in.SetValue(defaults[i])
		f.inputs[i] = in
	}
	f.inputs[fieldName].Placeholder = "my-vm"
	f.inputs[fieldName].Focus()
	return f
}

// setFocus moves the focus to field i, wrapping around.
func (f *createForm) setFocus(i int) {
	i = ((i % numFields) + numFields) % numFields
	f.inputs[f.focus].Blur()
	f.focus = i
	if i != fieldTemplate {
		f.inputs[i].Focus()
	}
}

// update handles a key for the form; submit is true when the user asked to
// create the VM.
func (f createForm) update(msg tea.KeyMsg) (createForm, bool) {
	switch msg.String() {
	case "tab", "down":
		f.setFocus(f.focus + 1)
		return f, false
	case "shift+tab", "up":
		f.setFocus(f.focus - 1)
		return f, false
	case "ctrl+s":
		return f, true
	case "enter":
		if f.focus == numFields-1 {
			return f, true
		}
		f.setFocus(f.focus + 1)
		return f, false
	}
	if f.focus == fieldTemplate {
		if n := len(f.templates); n > 0 {
			switch msg.String() {
			case "left", "h":
				f.tmpl = (f.tmpl - 1 + n) % n
			case "right", "l", " ":
				f.tmpl = (f.tmpl + 1) % n
			}
		}
		return f, false
	}
	// Text inputs only return blink commands, which are off.
	f.inputs[f.focus], _ = f.inputs[f.focus].Update(msg)
	return f, false
}

// validate checks the fields against the API's limits and the caller's
// quota (when known) and returns the request when every field is fine.
func (f createForm) validate(user *api.User) (createForm, api.CreateVMRequest, bool) {
	f.errs = [numFields]string{}
	req := api.CreateVMRequest{Name: strings.TrimSpace(f.inputs[fieldName].Value())}
	switch {
	case req.Name == "":
		f.errs[fieldName] = "a name is required"
	case !dnslabel.Valid(req.Name):
		f.errs[fieldName] = "use lower-case letters, digits and dashes (at most 63, no dash at either end)"
	}
	if len(f.templates) == 0 {
		f.errs[fieldTemplate] = "the server has no templates"
	} else {
		req.Template = f.templates[f.tmpl%len(f.templates)]
	}
	var quota, usage api.Quota
	if user != nil {
		quota, usage = user.Quota, user.Usage
	}
	num := func(i, lo, hi, limit, used int, unit string) int {
		s := strings.TrimSpace(f.inputs[i].Value())
		n, err := strconv.Atoi(s)
		switch {
		case err != nil:
			f.errs[i] = "must be a whole number"
		case n < lo || n > hi:
			f.errs[i] = fmt.Sprintf("must be between %d and %d", lo, hi)
		case limit > 0 && used+n > limit:
			f.errs[i] = fmt.Sprintf("over your quota: %d%s of %d%s left", max(limit-used, 0), unit, limit, unit)
		}
		return n
	}
	req.CPU = num(fieldCPU, 1, api.MaxCPU, quota.CPUs, usage.CPUs, "")
	req.MemoryMB = num(fieldMemory, api.MinMemoryMB, api.MaxMemoryMB, quota.MemoryMB, usage.MemoryMB, "MB")
	req.DiskGB = num(fieldDisk, 1, api.MaxDiskGB, quota.DiskGB, usage.DiskGB, "GB")
	if quota.VMs > 0 && usage.VMs >= quota.VMs && f.errs[fieldName] == "" {
		f.errs[fieldName] = fmt.Sprintf("over your quota: all %d VMs in use", quota.VMs)
	}
	for _, e := range f.errs {
		if e != "" {
			return f, api.CreateVMRequest{}, false
		}
	}
	return f, req, true
}

func (f createForm) view(st styles) string {
	var b strings.Builder
	b.WriteString(st.title.Render("Create a VM") + "\n\n")
	for i := 0; i < numFields; i++ {
		marker := "  "
		if i == f.focus {
			marker = st.accent.Render("> ")
		}
		label := fmt.Sprintf("%-10s ", fieldLabels[i])
		var value string
		if i == fieldTemplate {
			switch {
			case len(f.templates) == 0:
				value = st.dim.Render("(none)")
			default:
				value = "< " + f.templates[f.tmpl%len(f.templates)] + " >"
				if i == f.focus {
					value = st.accent.Render(value)
				}
			}
		} else {
			value = f.inputs[i].View()
		}
		line := marker + label + value
		if f.errs[i] != "" {
			line += "  " + st.err.Render(f.errs[i])
		}
		b.WriteString(line + "\n")
	}
	b.WriteString("\n")
	switch {
	case f.submitting:
		b.WriteString(st.dim.Render("creating…") + "\n")
	case f.serverErr != "":
		b.WriteString(st.err.Render(f.serverErr) + "\n")
	}
	b.WriteString(st.dim.Render("tab/↓ next field · ←/→ template · enter on the last field or ctrl+s create · esc cancel"))
	return b.String()
}

// styles are the dashboard's lipgloss styles, all from one renderer so that
// NO_COLOR or a dumb terminal turns every colour off at once.
type styles struct {
	plain, dim, title, accent, err, cursor, selected lipgloss.Style
	running, stopped, errState, transitional         lipgloss.Style
	barLow, barMid, barHigh, barEmpty                lipgloss.Style
}

func newStyles(r *lipgloss.Renderer) styles {
	s := r.NewStyle
	return styles{
		plain:        s(),
		dim:          s().Foreground(lipgloss.Color("8")),
		title:        s().Bold(true),
		accent:       s().Foreground(lipgloss.Color("6")),
		err:          s().Foreground(lipgloss.Color("1")),
		cursor:       s().Reverse(true),
		selected:     s().Bold(true),
		running:      s().Foreground(lipgloss.Color("2")),
		stopped:      s().Foreground(lipgloss.Color("8")),
		errState:     s().Foreground(lipgloss.Color("1")),
		transitional: s().Foreground(lipgloss.Color("3")),
		barLow:       s().Foreground(lipgloss.Color("2")),
		barMid:       s().Foreground(lipgloss.Color("3")),
		barHigh:      s().Foreground(lipgloss.Color("1")),
		barEmpty:     s().Foreground(lipgloss.Color("8")),
	}
}

// state picks a VM state's colour: green running, red error, grey stopped,
// yellow anything on its way somewhere.
func (st styles) state(s api.State) lipgloss.Style {
	switch s {
	case api.StateRunning:
		return st.running
	case api.StateError:
		return st.errState
	case api.StateStopped, StateDeleted:
		return st.stopped
	default:
		return st.transitional
	}
}
