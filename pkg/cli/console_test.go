package cli

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/client"
	"github.com/vmdhq/vmd/pkg/console/consoletest"
	"github.com/vmdhq/vmd/pkg/rfb"
	"github.com/vmdhq/vmd/pkg/rfb/rfbtest"
)

func TestNewCmdConsole(t *testing.T) {
	for _, c := range []struct {
		args    string
		want    ConsoleOptions
		wantErr bool
	}{
		{args: "web", want: ConsoleOptions{Name: "web"}},
		{args: "web --print-url", want: ConsoleOptions{Name: "web", PrintURL: true}},
		{args: "web --tunnel", want: ConsoleOptions{Name: "web", Tunnel: "127.0.0.1:5900"}},
		{args: "--tunnel web", want: ConsoleOptions{Name: "web", Tunnel: "127.0.0.1:5900"}},
		{args: "web --tunnel=127.0.0.1:6000", want: ConsoleOptions{Name: "web", Tunnel: "127.0.0.1:6000"}},
		{args: "web --tunnel 127.0.0.1:6001", want: ConsoleOptions{Name: "web", Tunnel: "127.0.0.1:6001"}},
		{args: "web --tunnel --print-url", wantErr: true},
		{args: "", wantErr: true},
		{args: "web db", wantErr: true},
	} {
		t.Run(c.args, func(t *testing.T) {
			e := newTestEnv(t)
			var got *ConsoleOptions
			cmd := NewCmdConsole(e.f, func(_ context.Context, o *ConsoleOptions) error { got = o; return nil })
			cmd.SetArgs(strings.Fields(c.args))
			cmd.SetOut(e.out)
			cmd.SetErr(e.errOut)
			err := cmd.Execute()
			if c.wantErr {
				if err == nil {
					t.Fatalf("accepted: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != c.want.Name || got.PrintURL != c.want.PrintURL || got.Tunnel != c.want.Tunnel {
				t.Fatalf("got %+v, want %+v", *got, c.want)
			}
		})
	}
}

func consoleOpts(t *testing.T, env *consoletest.Env, userID string) (*ConsoleOptions, *testEnv) {
	te := newTestEnv(t)
	return &ConsoleOptions{IO: te.f.IOStreams, Name: "web",
		Client: func() (*client.Client, error) { return client.New(env.Server.URL, userID), nil }}, te
}

func TestConsoleRunBrowserAndPrintURL(t *testing.T) {
	env := consoletest.New(t, nil)
	alice := env.AddUser(t, "alice")
	v := env.AddVM(t, alice, "web", false)
	ctx := context.Background()

	opts, te := consoleOpts(t, env, alice.ID)
	var opened string
	opts.Browser = func(u string) error { opened = u; return nil }
	if err := consoleRun(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(opened, env.Server.URL+"/console/"+v.ID+"#token=") || te.out.Len() != 0 {
		t.Fatalf("opened %q, stdout %q", opened, te.out)
	}

	opts, te = consoleOpts(t, env, alice.ID)
	opts.Browser = func(string) error { return errors.New("no display") }
	if err := consoleRun(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(te.out.String(), env.Server.URL+"/console/") || !strings.Contains(te.errOut.String(), "no display") {
		t.Fatalf("no browser: stdout %q stderr %q", te.out, te.errOut)
	}

	opts, te = consoleOpts(t, env, alice.ID)
	opts.PrintURL = true
	opts.Browser = func(string) error { t.Fatal("opened a browser with --print-url"); return nil }
	if err := consoleRun(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(te.out.String()), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "#token=") {
		t.Fatalf("--print-url printed %q", te.out)
	}

	opts, _ = consoleOpts(t, env, alice.ID)
	opts.Name = "nope"
	if err := consoleRun(ctx, opts); ExitCode(err) != ExitNotFound {
		t.Fatalf("unknown vm: %v (exit %d)", err, ExitCode(err))
	}
}

// TestConsoleTunnel is the "done when" test through vmctl: a Go RFB client
// connects to the tunnel's TCP port and reaches the real guest's screen.
func TestConsoleTunnel(t *testing.T) {
	env := consoletest.New(t, nil)
	alice := env.AddUser(t, "alice")
	env.AddVM(t, alice, "web", true)
	opts, te := consoleOpts(t, env, alice.ID)
	opts.Tunnel = "127.0.0.1:0"
	ready := make(chan net.Addr, 1)
	opts.Ready = func(a net.Addr) { ready <- a }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- consoleRun(ctx, opts) }()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("tunnel ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("tunnel not listening after 10 s")
	}

	// Twice: each connection takes a fresh single-use token.
	for i := 0; i < 2; i++ {
		conn, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		hctx, hcancel := context.WithTimeout(ctx, 40*time.Second)
		c, err := rfb.Handshake(hctx, conn)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if c.Width < 640 || c.Height < 400 {
			t.Fatalf("server init %dx%d", c.Width, c.Height)
		}
		rfbtest.WaitForText(hctx, t, c, 20*time.Second)
		c.Close()
		hcancel()
	}

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("tunnel ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("tunnel did not stop on cancel")
	}
	want := "forwarding " + addr.String() + " to VM web; connect a VNC viewer to " + addr.String() + "; Ctrl-C to stop"
	if !strings.Contains(te.errOut.String(), want) {
		t.Fatalf("stderr %q, want %q", te.errOut, want)
	}
}
