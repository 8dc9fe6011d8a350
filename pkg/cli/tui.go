package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
	"github.com/vmdhq/vmd/tui"
)

// TUIOptions are the inputs of vmctl tui.
type TUIOptions struct {
	IO     *IOStreams
	Client func() (*client.Client, error)
	// Browser opens a console URL; nil means the system's default browser.
	Browser func(url string) error

	All          bool
	PollInterval time.Duration
	// Global are the global flags given (--server, --context…), passed on
	// to the vmctl that e (shell) and a (serial console) run.
	Global []string
}

// NewCmdTUI builds `vmctl tui`.
func NewCmdTUI(f *Factory, runF func(context.Context, *TUIOptions) error) *cobra.Command {
	opts := &TUIOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "tui",
		Short: "Open the interactive dashboard",
		Long: `Open a live table of your VMs with quota usage, updated as their states change.

Keys: s start, x stop, X force stop, d delete (asks y/n), n create, c open the
console in the browser, t VNC tunnel on/off, / filter by name, r refresh, ? help, q quit.
Enter shows a VM's details and l its serial log. e opens a shell: 'vmctl ssh'
where the VM has a network, an address and a known login user, else 'vmctl
shell' (through the guest agent, a line at a time, no terminal in the guest);
a opens its serial console (Ctrl-] detaches). Both come back to the dashboard
when they end. Colour is off when NO_COLOR is set.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.PollInterval <= 0 {
				return flagErrorf("--poll-interval must be positive")
			}
			cmd.InheritedFlags().Visit(func(f *pflag.Flag) {
				if f.Name != "quiet" {
					opts.Global = append(opts.Global, "--"+f.Name+"="+f.Value.String())
				}
			})
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return tuiRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.All, "all", "A", false, "show every user's VMs (admins only)")
	cmd.Flags().DurationVar(&opts.PollInterval, "poll-interval", 2*time.Second, "how often VM states are polled")
	return cmd
}

func tuiRun(ctx context.Context, opts *TUIOptions) error {
	// A full-screen program on a pipe would only write escape codes into it.
	if !opts.IO.CanPrompt() {
		return errors.New("vmctl tui needs a terminal on stdin and stdout; use 'vmctl list' in scripts")
	}
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	r := lipgloss.NewRenderer(opts.IO.Out)
	if !opts.IO.colorOn() {
		r.SetColorProfile(termenv.Ascii)
	}
	open := opts.Browser
	if open == nil {
		open = openBrowser
	}
	// Ends the change feed's goroutine and any tunnels when the program
	// quits. Ctrl-C is a key here (raw mode), and in a shell that e started
	// (same process group) that shell's: it does not end the dashboard.
	ctx, stopSignals := withoutInterrupt(ctx)
	defer stopSignals()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b := tui.ClientBackend{Client: c, All: opts.All, PollInterval: opts.PollInterval}
	var shell func(api.VM, string) *exec.Cmd
	var serial func(string) *exec.Cmd
	if self, err := os.Executable(); err == nil {
		shell = tui.ShellCommand(ctx, self, opts.Global)
		serial = tui.SerialCommand(ctx, self, opts.Global)
	}
	m := tui.New(ctx, b, tui.Options{All: opts.All, Server: c.Server(), Open: open, Renderer: r, Shell: shell, Serial: serial,
		Tunnel: func(ctx context.Context, id string) (string, func(), error) { return startTunnel(ctx, c, id) }})
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(opts.IO.In), tea.WithOutput(opts.IO.Out), tea.WithAltScreen())
	if _, err := p.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("tui: %w", err)
	}
	return nil
}

// startTunnel listens on 127.0.0.1:5900, or any free port when that is
// taken, and forwards viewers to the VM's console until stop is called.
func startTunnel(ctx context.Context, c *client.Client, id string) (string, func(), error) {
	if _, err := c.Console(ctx, id); err != nil { // fail now if there is no console to reach
		return "", nil, err
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:5900")
	if err != nil {
		if l, err = lc.Listen(ctx, "tcp", "127.0.0.1:0"); err != nil {
			return "", nil, fmt.Errorf("tunnel: listen: %w", err)
		}
	}
	tctx, stop := context.WithCancel(ctx)
	go func() { _ = c.ServeTunnel(tctx, l, id, nil) }()
	return l.Addr().String(), stop, nil
}
