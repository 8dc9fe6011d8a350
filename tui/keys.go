package tui

import "github.com/charmbracelet/bubbles/key"

// keyMap is the dashboard's bindings; it is also what the help view lists.
type keyMap struct {
	Up, Down, PageUp, PageDown, Home, End key.Binding

	Start, Stop, ForceStop, Delete, Console, Tunnel, Create key.Binding
	Filter, ClearFilter, Refresh, Help, Quit                key.Binding

	Open, Logs, Shell, Serial, Back key.Binding // the detail view (detail.go)
}

func newKeyMap() keyMap {
	return keyMap{
		Up:          key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:        key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		PageUp:      key.NewBinding(key.WithKeys("pgup", "ctrl+b"), key.WithHelp("pgup", "page up")),
		PageDown:    key.NewBinding(key.WithKeys("pgdown", "ctrl+f"), key.WithHelp("pgdn", "page down")),
		Home:        key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("g", "first")),
		End:         key.NewBinding(key.WithKeys("end", "G"), key.WithHelp("G", "last")),
		Start:       key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "start")),
		Stop:        key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "stop")),
		ForceStop:   key.NewBinding(key.WithKeys("X"), key.WithHelp("X", "force stop")),
		Delete:      key.NewBinding(key.WithKeys("d"), key.WithHelp("d", "delete")),
		Console:     key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "console")),
		Tunnel:      key.NewBinding(key.WithKeys("t"), key.WithHelp("t", "vnc tunnel on/off")),
		Create:      key.NewBinding(key.WithKeys("n"), key.WithHelp("n", "new vm")),
		Filter:      key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		ClearFilter: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "clear filter")),
		Refresh:     key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "refresh")),
		Help:        key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:        key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
		Open:        key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "details")),
		Logs:        key.NewBinding(key.WithKeys("l"), key.WithHelp("l", "serial log")),
		Shell:       key.NewBinding(key.WithKeys("e"), key.WithHelp("e", "shell")),
		Serial:      key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "serial console")),
		Back:        key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
	}
}

// ShortHelp is the one-line hint under the table.
func (k keyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Start, k.Stop, k.Delete, k.Console, k.Create, k.Filter, k.Help, k.Quit}
}

// FullHelp is the help screen, one column per group.
func (k keyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Home, k.End},
		{k.Start, k.Stop, k.ForceStop, k.Delete, k.Create},
		{k.Console, k.Tunnel, k.Filter, k.ClearFilter, k.Refresh, k.Help, k.Quit},
		{k.Open, k.Logs, k.Shell, k.Serial, k.Back},
	}
}
