package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/vmdhq/vmd/pkg/client"
)

// PortForwardOptions are the inputs of vmctl port-forward.
type PortForwardOptions struct {
	IO     *IOStreams
	Client func() (*client.Client, error)

	Name     string
	Mappings []PortMapping
	Stdio    int // guest port for --stdio; 0 for none
	// Ready, when set, is told each listener's address (tests listen on port 0).
	Ready func(m PortMapping, addr net.Addr)
}

// PortMapping is one [ADDR:]LOCAL:GUEST argument.
type PortMapping struct {
	Addr  string
	Local int
	Guest int
}

// parseMapping reads "[ADDR:]LOCAL:GUEST" or "PORT" (the same port both
// sides, as kubectl port-forward does); LOCAL 0 picks a free port.
func parseMapping(s string) (PortMapping, error) {
	m := PortMapping{Addr: "127.0.0.1"}
	parts := strings.Split(s, ":")
	if strings.HasPrefix(s, "[") { // [::1]:LOCAL:GUEST
		end := strings.Index(s, "]")
		if end < 0 {
			return m, fmt.Errorf("mapping %q: unclosed [", s)
		}
		m.Addr = s[1:end]
		parts = strings.Split(strings.TrimPrefix(s[end+1:], ":"), ":")
		if len(parts) != 2 {
			return m, fmt.Errorf("mapping %q: want [ADDR]:LOCAL:GUEST", s)
		}
	}
	num := func(p string, min int) (int, error) {
		n, err := strconv.Atoi(p)
		if err != nil || n < min || n > 65535 {
			return 0, fmt.Errorf("mapping %q: port %q must be a number between %d and 65535", s, p, min)
		}
		return n, nil
	}
	var err error
	switch len(parts) {
	case 1:
		if m.Guest, err = num(parts[0], 1); err != nil {
			return m, err
		}
		m.Local = m.Guest
	case 2:
		if m.Local, err = num(parts[0], 0); err != nil {
			return m, err
		}
		m.Guest, err = num(parts[1], 1)
	case 3:
		if parts[0] == "" {
			return m, fmt.Errorf("mapping %q: empty address", s)
		}
		m.Addr = parts[0]
		if m.Local, err = num(parts[1], 0); err != nil {
			return m, err
		}
		m.Guest, err = num(parts[2], 1)
	default:
		return m, fmt.Errorf("mapping %q: want [ADDR:]LOCAL:GUEST", s)
	}
	return m, err
}

// NewCmdPortForward builds `vmctl port-forward NAME [ADDR:]LOCAL:GUEST...`.
func NewCmdPortForward(f *Factory, runF func(context.Context, *PortForwardOptions) error) *cobra.Command {
	opts := &PortForwardOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "port-forward NAME [ADDR:]LOCAL:GUEST... | NAME --stdio GUEST",
		Short: "Forward local ports to a virtual machine's guest ports through vmd",
		Long: `Listen on local ports and carry each connection to the guest's port through
vmd (a WebSocket per connection; no guest port is ever opened on the server).
The local address defaults to 127.0.0.1; LOCAL 0 picks a free port.

With --stdio GUEST, standard input and output are one connection to the
guest's port: an ssh ProxyCommand ("vmctl ssh" uses it).`,
		Example: `  vmctl port-forward web 8080:80
  vmctl port-forward web 8080:80 0.0.0.0:8443:443
  ssh -o ProxyCommand='vmctl port-forward web --stdio 22' root@web`,
		ValidArgsFunction: completeVMNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return flagErrorf("NAME is required")
			}
			opts.Name = args[0]
			switch {
			case opts.Stdio != 0 && len(args) > 1:
				return flagErrorf("--stdio takes no port mappings")
			case opts.Stdio < 0 || opts.Stdio > 65535:
				return flagErrorf("--stdio %d: port must be between 1 and 65535", opts.Stdio)
			case opts.Stdio == 0 && len(args) < 2:
				return flagErrorf("give at least one [ADDR:]LOCAL:GUEST mapping, or --stdio GUEST")
			}
			for _, a := range args[1:] {
				m, err := parseMapping(a)
				if err != nil {
					return &FlagError{err: err}
				}
				opts.Mappings = append(opts.Mappings, m)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return portForwardRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntVar(&opts.Stdio, "stdio", 0, "carry standard input and output to this guest port (for an ssh ProxyCommand)")
	return cmd
}

func portForwardRun(ctx context.Context, opts *PortForwardOptions) error {
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	if opts.Stdio != 0 {
		s, err := c.DialPortForward(ctx, opts.Name, opts.Stdio)
		if err != nil {
			return err
		}
		return carry(ctx, s, opts.IO.In, opts.IO.Out, func() {})
	}
	vm, err := c.GetVM(ctx, opts.Name) // once: every connection then names the VM by id
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for _, m := range opts.Mappings {
		l, err := net.Listen("tcp", net.JoinHostPort(m.Addr, strconv.Itoa(m.Local)))
		if err != nil {
			return fmt.Errorf("listen for %d: %w", m.Guest, err)
		}
		lns = append(lns, l)
		fmt.Fprintf(opts.IO.Out, "Forwarding from %s -> %d\n", l.Addr(), m.Guest)
		if opts.Ready != nil {
			opts.Ready(m, l.Addr())
		}
	}
	var wg sync.WaitGroup
	errc := make(chan error, len(lns))
	for i, l := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- serveForward(ctx, c, vm.ID, opts.Mappings[i].Guest, l, opts.IO)
		}()
	}
	go func() { <-ctx.Done(); _ = closeAll(lns) }()
	err = <-errc
	cancel()
	wg.Wait()
	if ctx.Err() != nil && errors.Is(err, net.ErrClosed) {
		return ctx.Err()
	}
	return err
}

func closeAll(lns []net.Listener) error {
	for _, l := range lns {
		l.Close()
	}
	return nil
}

// serveForward accepts on l and carries each connection to the guest's port
// over a stream of its own, until l closes.
func serveForward(ctx context.Context, c *client.Client, vmID string, guest int, l net.Listener, ios *IOStreams) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := l.Accept()
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			s, err := c.DialPortForward(ctx, vmID, guest)
			if err != nil {
				if ctx.Err() == nil {
					fmt.Fprintf(ios.ErrOut, "error: connection from %s: %v\n", conn.RemoteAddr(), err)
				}
				return
			}
			stop := context.AfterFunc(ctx, func() { conn.Close() })
			defer stop()
			closeOut := func() {
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
			}
			if err := carry(ctx, s, conn, conn, closeOut); err != nil && ctx.Err() == nil {
				fmt.Fprintf(ios.ErrOut, "error: connection from %s: %v\n", conn.RemoteAddr(), err)
			}
		}()
	}
}

// carry copies in to the guest and the guest to out until both sides have
// ended (each end is passed on as a half-close, so a guest reading to EOF —
// nc, cat — finishes) and the server has closed the stream, or one fails.
// The stream is closed on return.
func carry(ctx context.Context, s *client.Stream, in io.Reader, out io.Writer, closeOut func()) error {
	defer s.Close()
	sent := make(chan error, 1)
	go func() {
		_, err := io.CopyBuffer(struct{ io.Writer }{s}, struct{ io.Reader }{in}, make([]byte, 256<<10))
		if err == nil {
			err = s.CloseWrite()
		}
		sent <- err
	}()
	got := make(chan error, 1)
	go func() {
		_, err := io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{s}, make([]byte, 256<<10))
		closeOut()
		if err == nil {
			// The guest has ended its side; what we send may still be on
			// its way to it. Keep reading (it answers vmd's pings) until
			// vmd closes the stream, which it does once it has passed on
			// all we sent.
			err = s.WaitClosed(ctx)
		}
		got <- err
	}()
	for left := 2; left > 0; left-- {
		select {
		case err := <-got:
			if err != nil {
				return err
			}
			got = nil
		case err := <-sent:
			if err != nil {
				return err
			}
			sent = nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
