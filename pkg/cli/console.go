package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmdhq/vmd/pkg/client"
)

// DefaultTunnelAddr is where `vmctl console --tunnel` listens by default.
const DefaultTunnelAddr = "127.0.0.1:5900"

// ConsoleOptions are the inputs of vmctl console.
type ConsoleOptions struct {
	IO     *IOStreams
	Client func() (*client.Client, error)
	// Browser opens a URL; nil means the system's default browser.
	Browser func(url string) error

	Name     string
	PrintURL bool
	Tunnel   string // listen address; "" means no tunnel
	// Ready, when set, is told the tunnel's listening address (tests listen on port 0).
	Ready func(net.Addr)
	// Serial attaches the terminal to the VM's serial port (serial.go);
	// Write takes typing over from another connection.
	Serial, Write bool

	// Share links: list them, mint one (valid TTL), or revoke one.
	Links  bool
	Share  bool
	TTL    string
	Revoke string
}

// NewCmdConsole builds `vmctl console NAME`.
func NewCmdConsole(f *Factory, runF func(context.Context, *ConsoleOptions) error) *cobra.Command {
	opts := &ConsoleOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "console NAME",
		Short: "Open a virtual machine's graphical console",
		Long: `Open the VM's graphical console (noVNC) in the default browser.

With --print-url the console's URL is printed instead; it holds a single-use
token that is valid for a short time. With --tunnel, vmctl listens on a local
address and forwards raw VNC (RFB) over the console WebSocket, so a native
VNC viewer can connect to it; each connection gets a fresh token.

With --serial the terminal is attached to the VM's serial port instead, in
raw mode; Ctrl-] detaches. The first connection to a VM's serial port types
and later ones only watch (they are told so); --write takes typing over.`,
		Example: `  vmctl console web
  vmctl console web --print-url
  vmctl console web --tunnel            # then: vncviewer 127.0.0.1:5900
  vmctl console web --tunnel 127.0.0.1:5901
  vmctl console web --serial            # Ctrl-] detaches
  vmctl console web --share --ttl 30m    # a view-only link for someone else
  vmctl console web --links
  vmctl console web --revoke lnk_…`,
		Args: func(cmd *cobra.Command, args []string) error {
			// "--tunnel ADDR" with a space: pflag's NoOptDefVal leaves ADDR as an argument.
			if len(args) == 2 && cmd.Flags().Changed("tunnel") && opts.Tunnel == DefaultTunnelAddr {
				return nil
			}
			return exactArgs(1, "NAME")(cmd, args)
		},
		ValidArgsFunction: completeVMNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if len(args) == 2 {
				opts.Tunnel = args[1]
			}
			if opts.PrintURL && cmd.Flags().Changed("tunnel") {
				return flagErrorf("--print-url and --tunnel cannot be used together")
			}
			if opts.Serial && (opts.PrintURL || cmd.Flags().Changed("tunnel")) {
				return flagErrorf("--serial cannot be used with --print-url or --tunnel")
			}
			if opts.Write && !opts.Serial {
				return flagErrorf("--write needs --serial")
			}
			if cmd.Flags().Changed("tunnel") && opts.Tunnel == "" {
				return flagErrorf("--tunnel needs an address such as %s", DefaultTunnelAddr)
			}
			modes := 0
			for _, on := range []bool{opts.Links, opts.Share, opts.Revoke != "", opts.PrintURL, cmd.Flags().Changed("tunnel")} {
				if on {
					modes++
				}
			}
			if modes > 1 {
				return flagErrorf("--links, --share, --revoke, --print-url and --tunnel cannot be used together")
			}
			if opts.TTL != "" && !opts.Share {
				return flagErrorf("--ttl goes with --share")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return consoleRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&opts.PrintURL, "print-url", false, "print the console URL instead of opening a browser")
	fl.StringVar(&opts.Tunnel, "tunnel", "", "forward raw VNC on this local address (default "+DefaultTunnelAddr+" when given alone)")
	fl.Lookup("tunnel").NoOptDefVal = DefaultTunnelAddr
	fl.BoolVar(&opts.Serial, "serial", false, "attach this terminal to the VM's serial port (Ctrl-] detaches)")
	fl.BoolVar(&opts.Write, "write", false, "with --serial: take typing over from the connection that has it")
	fl.BoolVar(&opts.Links, "links", false, "list the VM's view-only share links")
	fl.BoolVar(&opts.Share, "share", false, "mint a view-only share link and print its URL")
	fl.StringVar(&opts.TTL, "ttl", "", "how long a --share link is valid (default 1h, at most 24h)")
	fl.StringVar(&opts.Revoke, "revoke", "", "revoke the share link with this id (its viewers are disconnected)")
	return cmd
}

func consoleRun(ctx context.Context, opts *ConsoleOptions) error {
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	if opts.Tunnel != "" {
		return tunnel(ctx, opts, c)
	}
	if opts.Serial {
		return serialRun(ctx, opts, c)
	}
	switch {
	case opts.Share:
		l, err := c.CreateShareLink(ctx, opts.Name, opts.TTL)
		if err != nil {
			return err
		}
		opts.IO.Infof("View-only link %s of vm %s, valid until %s (revoke: vmctl console %s --revoke %s):\n",
			l.ID, opts.Name, l.ExpiresAt.Local().Format(time.RFC3339), opts.Name, l.ID)
		fmt.Fprintln(opts.IO.Out, l.URL)
		return nil
	case opts.Links:
		ls, err := c.ShareLinks(ctx, opts.Name)
		if err != nil {
			return err
		}
		if opts.IO.OutTTY {
			fmt.Fprintln(opts.IO.Out, "ID\tCREATED\tEXPIRES")
		}
		for _, l := range ls {
			fmt.Fprintf(opts.IO.Out, "%s\t%s\t%s\n", l.ID, l.CreatedAt.Local().Format(time.RFC3339), l.ExpiresAt.Local().Format(time.RFC3339))
		}
		return nil
	case opts.Revoke != "":
		if err := c.RevokeShareLink(ctx, opts.Name, opts.Revoke); err != nil {
			return err
		}
		opts.IO.Infof("Revoked share link %s of vm %s.\n", opts.Revoke, opts.Name)
		return nil
	}
	res, err := c.Console(ctx, opts.Name)
	if err != nil {
		return err
	}
	if opts.PrintURL {
		fmt.Fprintln(opts.IO.Out, res.URL)
		return nil
	}
	open := opts.Browser
	if open == nil {
		open = openBrowser
	}
	if err := open(res.URL); err != nil {
		fmt.Fprintf(opts.IO.ErrOut, "could not open a browser (%v); open this URL within %s:\n",
			err, max(time.Until(res.ExpiresAt), 0).Round(time.Second))
		fmt.Fprintln(opts.IO.Out, res.URL)
		return nil
	}
	opts.IO.Infof("Opened the console of vm %s in your browser.\n", opts.Name)
	return nil
}

// openBrowser opens url with the platform's opener. Without a display on
// Linux or BSD there is no browser to open, so it says so.
func openBrowser(url string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", url)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
			return errors.New("no display")
		}
		p, err := exec.LookPath("xdg-open")
		if err != nil {
			return errors.New("xdg-open not found")
		}
		cmd = exec.Command(p, url)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}

// tunnel listens on opts.Tunnel and forwards each accepted connection over
// its own console WebSocket (a console token opens one connection).
func tunnel(ctx context.Context, opts *ConsoleOptions, c *client.Client) error {
	// Fail before listening when the VM is unknown or has no console; the
	// token this takes expires unused.
	if _, err := c.Console(ctx, opts.Name); err != nil {
		return err
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", opts.Tunnel)
	if err != nil {
		return fmt.Errorf("tunnel: listen on %s: %w", opts.Tunnel, err)
	}
	addr := l.Addr()
	opts.IO.Infof("forwarding %s to VM %s; connect a VNC viewer to %s; Ctrl-C to stop\n", addr, opts.Name, addr)
	if opts.Ready != nil {
		opts.Ready(addr)
	}
	return c.ServeTunnel(ctx, l, opts.Name, func(remote net.Addr, err error) {
		fmt.Fprintf(opts.IO.ErrOut, "connection from %s: %v\n", remote, err)
	})
}
