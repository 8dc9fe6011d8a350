package tui

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
)

// Options configure the dashboard.
type Options struct {
	// All shows every user's VMs (admins only).
	All bool
	// Server is shown in the title.
	Server string
	// Now is the clock for the age column; nil means time.Now.
	Now func() time.Time
	// Open opens a console URL in a browser; nil means there is none.
	Open func(url string) error
	// Renderer renders the styles; nil means lipgloss's default. Give it
	// termenv.Ascii for no colour.
	Renderer *lipgloss.Renderer
	// Tick is how often ages are refreshed; zero means one second.
	Tick time.Duration
	// Resync is how often the whole list is fetched again besides the
	// change feed; zero means 30s, negative never.
	Resync time.Duration
	// Retry is the wait before the change feed is reopened after it broke;
	// zero means 2s.
	Retry time.Duration
	// Tunnel starts a local VNC tunnel to a VM's console and returns its
	// address and how to stop it; nil means the t key only shows the
	// `vmctl console --tunnel` command.
	Tunnel func(ctx context.Context, id string) (addr string, stop func(), err error)
	// Shell is the command e runs for a shell in vm (detail.go), sshUser
	// its template's login user ("" when unknown); nil means e only shows
	// the command to run.
	Shell func(vm api.VM, sshUser string) *exec.Cmd
	// Serial is the command a runs: the VM's serial console; nil means a
	// only shows the command to run.
	Serial func(name string) *exec.Cmd
}

type mode int

const (
	modeTable mode = iota
	modeFilter
	modeConfirm
	modeCreate
	modeHelp
	modeDetail
)

// Model is the dashboard's state. Update never does I/O: it returns Cmds
// that call the Backend and answer with the messages below.
type Model struct {
	ctx    context.Context
	b      Backend
	opts   Options
	st     styles
	keys   keyMap
	help   help.Model
	width  int
	height int
	now    time.Time

	mode       mode
	vms        []api.VM // sorted by name
	loaded     bool
	refreshing bool
	selectedID string
	user       *api.User
	templates  []api.Template
	filter     textinput.Model
	form       createForm
	// confirmID and confirmName are the VM a delete waits a y/n for.
	confirmID, confirmName string

	status    string
	statusErr bool

	// tunnels are the running console tunnels by VM id (t toggles one).
	tunnels map[string]openTunnel

	lastEventID int64
	changes     <-chan Change
	errs        <-chan error
	sinceResync time.Duration

	detail detailState // the VM Enter opened (detail.go)
}

// Messages the Cmds answer with.
type (
	vmsMsg struct {
		vms []api.VM
		err error
	}
	userMsg struct {
		user *api.User
		err  error
	}
	templatesMsg struct {
		templates []api.Template
		err       error
	}
	streamMsg struct {
		changes <-chan Change
		errs    <-chan error
	}
	changeMsg     Change
	streamEndMsg  struct{ err error }
	reconnectMsg  struct{}
	tickMsg       time.Time
	actionDoneMsg struct {
		verb, name string
		vm         *api.VM
		err        error
	}
	createdMsg struct {
		vm  *api.VM
		err error
	}
	consoleMsg struct {
		name, url string
		openErr   error
		err       error
	}
	tunnelMsg struct {
		id, name, addr string
		stop           func()
		err            error
	}
)

// openTunnel is a running console tunnel.
type openTunnel struct {
	addr string
	stop func()
}

// New returns the dashboard over b. ctx bounds every call it makes and the
// change feed.
func New(ctx context.Context, b Backend, opts Options) Model {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Tick <= 0 {
		opts.Tick = time.Second
	}
	if opts.Resync == 0 {
		opts.Resync = 30 * time.Second
	}
	if opts.Retry <= 0 {
		opts.Retry = 2 * time.Second
	}
	r := opts.Renderer
	if r == nil {
		r = lipgloss.DefaultRenderer()
	}
	st := newStyles(r)
	h := help.New()
	h.Styles = help.Styles{
		Ellipsis: st.dim, ShortKey: st.accent, ShortDesc: st.dim, ShortSeparator: st.dim,
		FullKey: st.accent, FullDesc: st.plain, FullSeparator: st.dim,
	}
	f := textinput.New()
	f.Prompt = "/"
	f.Placeholder = "name"
	f.CharLimit = 63
	f.Cursor.SetMode(cursor.CursorStatic)
	f.PromptStyle, f.TextStyle, f.PlaceholderStyle = st.accent, st.plain, st.dim
	f.Cursor.Style, f.Cursor.TextStyle = st.cursor, st.plain
	return Model{
		ctx: ctx, b: b, opts: opts, st: st, keys: newKeyMap(), help: h,
		width: 80, height: 24, now: opts.Now(), filter: f, tunnels: map[string]openTunnel{},
	}
}

// Init loads the VMs, the user and the templates and opens the change feed.
func (m Model) Init() tea.Cmd {
	// The VMs are listed once the feed is open (streamMsg), so no change
	// falls between the listing and the feed.
	return tea.Batch(m.loadUser(), m.loadTemplates(), m.openStream(client.FromNow), m.tick())
}

// Update applies one message. It never panics and never blocks.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if next, cmd, ok := m.detailUpdate(msg); ok {
		return next, cmd
	}
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = max(msg.Width, 1), max(msg.Height, 1)
		m.help.Width = m.width
		m.filter.Width = max(m.width-4, 1)
		return m, nil
	case tea.KeyMsg:
		return m.key(msg)
	case vmsMsg:
		m.refreshing = false
		if msg.err != nil {
			return m.fail("list vms", msg.err), nil
		}
		m.vms = sortVMs(msg.vms)
		m.loaded = true
		return m.keepSelection(), nil
	case userMsg:
		if msg.err != nil {
			return m.fail("get user", msg.err), nil
		}
		m.user = msg.user
		return m, nil
	case templatesMsg:
		if msg.err != nil {
			return m.fail("list templates", msg.err), nil
		}
		m.templates = msg.templates
		return m, nil
	case streamMsg:
		m.changes, m.errs = msg.changes, msg.errs
		return m.refresh(m.nextChange())
	case changeMsg:
		return m.applyChange(Change(msg))
	case streamEndMsg:
		m.changes, m.errs = nil, nil
		if m.ctx.Err() != nil {
			return m, nil
		}
		if msg.err != nil {
			m = m.fail("change feed", msg.err)
		}
		return m, tea.Tick(m.opts.Retry, func(time.Time) tea.Msg { return reconnectMsg{} })
	case reconnectMsg:
		if m.changes != nil {
			return m, nil
		}
		after := m.lastEventID
		if after <= 0 {
			after = client.FromNow
		}
		return m, m.openStream(after)
	case tickMsg:
		m.now = time.Time(msg)
		cmds := []tea.Cmd{m.tick()}
		if m.opts.Resync > 0 {
			m.sinceResync += m.opts.Tick
			if m.sinceResync >= m.opts.Resync {
				m.sinceResync = 0
				var c tea.Cmd
				m, c = m.refresh()
				cmds = append(cmds, c)
			}
		}
		return m, tea.Batch(cmds...)
	case actionDoneMsg:
		if msg.err != nil {
			return m.fail(msg.verb+" "+msg.name, msg.err), nil
		}
		m = m.setStatus(fmt.Sprintf("%s %s: accepted", msg.verb, msg.name))
		if msg.vm != nil {
			m = m.upsert(*msg.vm)
		}
		if msg.verb == "delete" {
			return m, m.loadUser()
		}
		return m, nil
	case createdMsg:
		m.form.submitting = false
		if msg.err != nil {
			if m.mode == modeCreate {
				m.form.serverErr = "create: " + errText(msg.err)
				return m, nil
			}
			return m.fail("create", msg.err), nil
		}
		if m.mode == modeCreate {
			m.mode = modeTable
		}
		if msg.vm != nil {
			m = m.upsert(*msg.vm)
			m.selectedID = msg.vm.ID
			m = m.setStatus(fmt.Sprintf("created vm %s", msg.vm.Name))
		}
		return m, m.loadUser()
	case tunnelMsg:
		if msg.err != nil {
			return m.fail("tunnel to "+msg.name, msg.err), nil
		}
		m.tunnels[msg.id] = openTunnel{addr: msg.addr, stop: msg.stop}
		return m.setStatus(fmt.Sprintf("tunnel to %s: connect a VNC viewer to %s (t again stops it)", msg.name, msg.addr)), nil
	case consoleMsg:
		switch {
		case msg.err != nil:
			return m.fail("console "+msg.name, msg.err), nil
		case msg.openErr != nil:
			return m.setStatus(fmt.Sprintf("could not open a browser (%s); console URL: %s", errText(msg.openErr), msg.url)), nil
		default:
			return m.setStatus("opened the console of " + msg.name + " in your browser"), nil
		}
	}
	return m, nil
}

func (m Model) key(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	if msg.String() == "ctrl+c" {
		return m, tea.Quit
	}
	switch m.mode {
	case modeDetail:
		return m.detailKey(msg)
	case modeHelp:
		m.mode = modeTable
		return m, nil
	case modeConfirm:
		id, name := m.confirmID, m.confirmName
		m.mode, m.confirmID, m.confirmName = modeTable, "", ""
		if s := msg.String(); s == "y" || s == "Y" {
			m = m.setStatus("deleting " + name + "…")
			return m, m.action("delete", name, func(ctx context.Context) (*api.VM, error) { return m.b.DeleteVM(ctx, id) })
		}
		return m.setStatus("delete cancelled"), nil
	case modeFilter:
		switch msg.String() {
		case "enter":
			m.filter.Blur()
			m.mode = modeTable
			return m.keepSelection(), nil
		case "esc":
			m.filter.Blur()
			m.filter.SetValue("")
			m.mode = modeTable
			return m.keepSelection(), nil
		}
		m.filter, _ = m.filter.Update(msg)
		return m.keepSelection(), nil
	case modeCreate:
		if msg.String() == "esc" {
			m.mode = modeTable
			return m.setStatus("create cancelled"), nil
		}
		if m.form.submitting {
			return m, nil
		}
		form, submit := m.form.update(msg)
		m.form = form
		if !submit {
			return m, nil
		}
		form, req, ok := m.form.validate(m.user)
		m.form = form
		if !ok {
			return m, nil
		}
		m.form.submitting, m.form.serverErr = true, ""
		b, ctx := m.b, m.ctx
		return m, func() tea.Msg {
			vm, err := b.CreateVM(ctx, req)
			return createdMsg{vm: vm, err: err}
		}
	}

	k := m.keys
	switch {
	case key.Matches(msg, k.Quit):
		return m, tea.Quit
	case key.Matches(msg, k.Up):
		return m.move(-1), nil
	case key.Matches(msg, k.Down):
		return m.move(1), nil
	case key.Matches(msg, k.PageUp):
		return m.move(-max(m.tableRows(), 1)), nil
	case key.Matches(msg, k.PageDown):
		return m.move(max(m.tableRows(), 1)), nil
	case key.Matches(msg, k.Home):
		return m.move(-len(m.vms)), nil
	case key.Matches(msg, k.End):
		return m.move(len(m.vms)), nil
	case key.Matches(msg, k.Help):
		m.mode = modeHelp
		return m, nil
	case key.Matches(msg, k.Refresh):
		m = m.setStatus("refreshing…")
		return m.refresh(m.loadUser(), m.loadTemplates())
	case key.Matches(msg, k.Filter):
		m.mode = modeFilter
		m.filter.Focus()
		return m, nil
	case key.Matches(msg, k.ClearFilter):
		m.filter.SetValue("")
		return m.keepSelection(), nil
	case key.Matches(msg, k.Create):
		m.mode = modeCreate
		m.form = newCreateForm(m.templates, m.st)
		if len(m.templates) == 0 {
			return m, m.loadTemplates()
		}
		return m, nil
	}

	vm, ok := m.selected()
	if !ok {
		if key.Matches(msg, k.Start, k.Stop, k.ForceStop, k.Delete, k.Console, k.Tunnel) {
			return m.setError("no VM selected"), nil
		}
		return m, nil
	}
	id, name, b := vm.ID, vm.Name, m.b
	switch {
	case key.Matches(msg, k.Start):
		m = m.setStatus("starting " + name + "…")
		return m, m.action("start", name, func(ctx context.Context) (*api.VM, error) { return b.StartVM(ctx, id) })
	case key.Matches(msg, k.Stop):
		m = m.setStatus("stopping " + name + "…")
		return m, m.action("stop", name, func(ctx context.Context) (*api.VM, error) { return b.StopVM(ctx, id, false) })
	case key.Matches(msg, k.ForceStop):
		m = m.setStatus("force-stopping " + name + "…")
		return m, m.action("force stop", name, func(ctx context.Context) (*api.VM, error) { return b.StopVM(ctx, id, true) })
	case key.Matches(msg, k.Delete):
		m.mode, m.confirmID, m.confirmName = modeConfirm, id, name
		return m, nil
	case key.Matches(msg, k.Open):
		return m.openDetail(vm)
	case key.Matches(msg, k.Logs):
		m, cmd := m.openDetail(vm)
		m.detail.logsOnly = true
		return m, cmd
	case key.Matches(msg, k.Shell):
		return m.shell(vm)
	case key.Matches(msg, k.Serial):
		return m.serial(name)
	case key.Matches(msg, k.Console):
		m = m.setStatus("opening the console of " + name + "…")
		ctx, open := m.ctx, m.opts.Open
		return m, func() tea.Msg {
			res, err := b.Console(ctx, id)
			if err != nil {
				return consoleMsg{name: name, err: err}
			}
			if open == nil {
				return consoleMsg{name: name, url: res.URL, openErr: errors.New("no opener")}
			}
			return consoleMsg{name: name, url: res.URL, openErr: open(res.URL)}
		}
	case key.Matches(msg, k.Tunnel):
		if t, ok := m.tunnels[id]; ok {
			delete(m.tunnels, id)
			return m.setStatus(fmt.Sprintf("tunnel to %s on %s stopped", name, t.addr)), func() tea.Msg { t.stop(); return nil }
		}
		if m.opts.Tunnel == nil {
			return m.setStatus(fmt.Sprintf("for a native VNC viewer run: vmctl console %s --tunnel  (then connect to 127.0.0.1:5900)", name)), nil
		}
		m = m.setStatus("starting a tunnel to " + name + "…")
		ctx, start := m.ctx, m.opts.Tunnel
		return m, func() tea.Msg {
			addr, stop, err := start(ctx, id)
			return tunnelMsg{id: id, name: name, addr: addr, stop: stop, err: err}
		}
	}
	return m, nil
}

// applyChange moves a VM's row to the state a Change reports.
func (m Model) applyChange(c Change) (Model, tea.Cmd) {
	m.lastEventID = max(m.lastEventID, c.ID)
	next := m.nextChange()
	i := m.index(c.VMID)
	switch {
	case c.State == StateDeleted:
		if i >= 0 {
			m.vms = append(append([]api.VM{}, m.vms[:i]...), m.vms[i+1:]...)
			m = m.keepSelection()
		}
		return m, tea.Batch(next, m.loadUser())
	case i < 0:
		// The feed carries no sizes or template; fetch the new VM's row.
		if !m.loaded || m.refreshing {
			return m, next
		}
		m2, c := m.refresh(m.loadUser())
		return m2, tea.Batch(next, c)
	}
	vms := append([]api.VM{}, m.vms...)
	vm := &vms[i]
	vm.State, vm.Message = c.State, c.Message
	if c.DesiredState != "" {
		vm.DesiredState = c.DesiredState
	}
	if !c.Time.IsZero() {
		vm.UpdatedAt = c.Time
	}
	m.vms = vms
	return m, next
}

// refresh lists the VMs again unless a listing is under way, batched with more.
func (m Model) refresh(more ...tea.Cmd) (Model, tea.Cmd) {
	if !m.refreshing {
		m.refreshing = true
		more = append(more, m.loadVMs())
	}
	return m, tea.Batch(more...)
}

func (m Model) setStatus(s string) Model { m.status, m.statusErr = s, false; return m }
func (m Model) setError(s string) Model  { m.status, m.statusErr = s, true; return m }
func (m Model) fail(what string, err error) Model {
	return m.setError(what + ": " + errText(err))
}

// errText is an error on one line, for the status line.
func errText(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// upsert puts vm in the table, replacing the row with its ID.
func (m Model) upsert(vm api.VM) Model {
	vms := append([]api.VM{}, m.vms...)
	if i := m.index(vm.ID); i >= 0 {
		vms[i] = vm
	} else {
		vms = append(vms, vm)
	}
	m.vms = sortVMs(vms)
	return m.keepSelection()
}

func (m Model) index(id string) int {
	for i := range m.vms {
		if m.vms[i].ID == id {
			return i
		}
	}
	return -1
}

// visible is the VMs the filter lets through, in table order.
func (m Model) visible() []api.VM {
	q := strings.ToLower(strings.TrimSpace(m.filter.Value()))
	if q == "" {
		return m.vms
	}
	out := make([]api.VM, 0, len(m.vms))
	for _, vm := range m.vms {
		if strings.Contains(strings.ToLower(vm.Name), q) {
			out = append(out, vm)
		}
	}
	return out
}

// cursor is the selected row's index in visible, or 0.
func (m Model) cursor(vis []api.VM) int {
	for i := range vis {
		if vis[i].ID == m.selectedID {
			return i
		}
	}
	return 0
}

// keepSelection points the selection at a visible VM: the same one when it
// still shows, else the first.
func (m Model) keepSelection() Model {
	vis := m.visible()
	if len(vis) == 0 {
		m.selectedID = ""
		return m
	}
	m.selectedID = vis[m.cursor(vis)].ID
	return m
}

func (m Model) move(n int) Model {
	vis := m.visible()
	if len(vis) == 0 {
		return m
	}
	i := min(max(m.cursor(vis)+n, 0), len(vis)-1)
	m.selectedID = vis[i].ID
	return m
}

func (m Model) selected() (api.VM, bool) {
	vis := m.visible()
	if len(vis) == 0 {
		return api.VM{}, false
	}
	return vis[m.cursor(vis)], true
}

func sortVMs(vms []api.VM) []api.VM {
	out := append([]api.VM{}, vms...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Cmds. Each captures what it needs, so it can run after Update returned.

func (m Model) loadVMs() tea.Cmd {
	b, ctx, all := m.b, m.ctx, m.opts.All
	return func() tea.Msg {
		vms, err := b.ListVMs(ctx, all)
		return vmsMsg{vms: vms, err: err}
	}
}

func (m Model) loadUser() tea.Cmd {
	b, ctx := m.b, m.ctx
	return func() tea.Msg {
		u, err := b.Me(ctx)
		return userMsg{user: u, err: err}
	}
}

func (m Model) loadTemplates() tea.Cmd {
	b, ctx := m.b, m.ctx
	return func() tea.Msg {
		ts, err := b.Templates(ctx)
		return templatesMsg{templates: ts, err: err}
	}
}

func (m Model) openStream(after int64) tea.Cmd {
	b, ctx := m.b, m.ctx
	return func() tea.Msg {
		ch, errs := b.Events(ctx, after)
		return streamMsg{changes: ch, errs: errs}
	}
}

// nextChange reads one change from the feed; Update re-arms it after each.
func (m Model) nextChange() tea.Cmd {
	ch, errs, ctx := m.changes, m.errs, m.ctx
	if ch == nil {
		return nil
	}
	return func() tea.Msg {
		select {
		case c, ok := <-ch:
			if ok {
				return changeMsg(c)
			}
		case <-ctx.Done():
			return streamEndMsg{}
		}
		if errs == nil {
			return streamEndMsg{}
		}
		select {
		case err := <-errs:
			return streamEndMsg{err: err}
		case <-ctx.Done():
			return streamEndMsg{}
		}
	}
}

func (m Model) tick() tea.Cmd {
	now := m.opts.Now
	return tea.Tick(m.opts.Tick, func(time.Time) tea.Msg { return tickMsg(now()) })
}

func (m Model) action(verb, name string, call func(context.Context) (*api.VM, error)) tea.Cmd {
	ctx := m.ctx
	return func() tea.Msg {
		vm, err := call(ctx)
		return actionDoneMsg{verb: verb, name: name, vm: vm, err: err}
	}
}
