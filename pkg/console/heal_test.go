package console_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/console"
	"github.com/vmdhq/vmd/pkg/console/consoletest"
)

// TestPingClosesDeadPeer: a peer that stops answering (it never reads, so
// it never pongs) is closed within two ping intervals, though the idle
// timeout is far off; one that reads stays open past them.
func TestPingClosesDeadPeer(t *testing.T) {
	const ping = 100 * time.Millisecond
	e := consoletest.New(t, func(c *console.Config) { c.PingInterval = ping })
	alice := e.AddUser(t, "alice")
	v := e.AddVM(t, alice, "web", false)

	live := mustDial(t, issue(t, e, alice, v).WSURL)
	defer live.CloseNow()
	// CloseRead reads (and so answers pings) in the background.
	liveCtx := live.CloseRead(context.Background())
	dead := mustDial(t, issue(t, e, alice, v).WSURL)
	defer dead.CloseNow()
	testutil.Eventually(t, 10*time.Second, "console sessions", func() bool { return e.Console.Sessions(v.ID) == 2 })

	start := time.Now()
	testutil.Eventually(t, 10*time.Second, "console sessions", func() bool { return e.Console.Sessions(v.ID) == 1 })
	if took := time.Since(start); took > 4*ping+time.Second {
		t.Fatalf("dead peer closed after %s, want within 2 pings (%s)", took, 2*ping)
	}
	select {
	case <-liveCtx.Done():
		t.Fatal("the peer that answers pings was closed too")
	default:
	}
}

// TestCloseCodes: what the page is told when the server ends a session.
// 1012 (vmd restarting) means reconnect; 4001 (the VM stopped) means show
// the VM's state and offer Start.
func TestCloseCodes(t *testing.T) {
	for _, c := range []struct {
		name   string
		end    func(e *consoletest.Env, vmID string)
		code   websocket.StatusCode
		reason string
	}{
		{"vmd shutdown", func(e *consoletest.Env, _ string) { e.Console.Close() }, websocket.StatusServiceRestart, "server restarting"},
		{"vm stopped", func(e *consoletest.Env, id string) { e.Console.CloseVM(id) }, console.StatusVMStopped, "vm stopped"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := consoletest.New(t, nil)
			alice := e.AddUser(t, "alice")
			v := e.AddVM(t, alice, "web", false)
			ws := mustDial(t, issue(t, e, alice, v).WSURL)
			defer ws.CloseNow()
			testutil.Eventually(t, 10*time.Second, "console sessions", func() bool { return e.Console.Sessions(v.ID) == 1 })
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			go c.end(e, v.ID)
			_, _, err := ws.Read(ctx)
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != c.code || ce.Reason != c.reason {
				t.Fatalf("closed with %v, want %d %q", err, c.code, c.reason)
			}
		})
	}
}
