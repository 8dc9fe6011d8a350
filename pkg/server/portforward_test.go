package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/console"
	"github.com/vmdhq/vmd/pkg/guestnet"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// echoGuest is a GuestDialer whose guest answers on port 9000 with a banner.
type echoGuest struct{ addr string }

func (g echoGuest) DialGuest(ctx context.Context, _ string, port int) (net.Conn, error) {
	if port != 9000 {
		return nil, fmt.Errorf("dial: %w", guestnet.ErrPortClosed)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", g.addr)
}

func bannerServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "hello from the guest\n")
			c.Close()
		}
	}()
	return l.Addr().String()
}

// TestPortForwardRoutes: the port-forward routes' authorization and
// refusals through the real server, on both stores.
func TestPortForwardRoutes(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		g := echoGuest{addr: bannerServer(t)}
		ce := newConsoleEnv(t, b, func(c *console.Config) { c.Guests = g })
		alice, bob := ce.signup("alice@example.com"), ce.signup("bob@example.com")
		v := ce.runningVM(alice, "web")
		var none api.VM
		alice.mustDo("POST", "/vms", api.CreateVMRequest{Name: "nonet", Template: "tiny", Network: api.NetworkNone}, 201, &none)
		if _, err := ce.store.SetState(context.Background(), none.ID, api.StateRunning, "test"); err != nil {
			t.Fatal(err)
		}
		ws := "ws" + strings.TrimPrefix(ce.cs.srv.URL, "http") + api.BasePath + "/vms/"
		as := func(u *user) http.Header { return http.Header{"Authorization": {"Bearer " + u.token}} }

		c, status, _ := wsDial(t, ws+v.ID+"/portforward?port=9000", as(alice))
		if status != http.StatusSwitchingProtocols {
			t.Fatalf("bearer port-forward: %d", status)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		typ, msg, err := c.Read(ctx)
		if err != nil || typ != websocket.MessageBinary || string(msg) != "hello from the guest\n" {
			t.Fatalf("first message %v %q %v", typ, msg, err)
		}
		if _, msg, err = c.Read(ctx); err != nil || len(msg) != 0 {
			t.Fatalf("guest's half-close: %q %v, want an empty message", msg, err)
		}
		for _, tc := range []struct {
			what, path string
			hdr        http.Header
			status     int
			code       string
		}{
			{"another user's vm", v.ID + "/portforward?port=9000", as(bob), 404, api.CodeNotFound},
			{"port 0", v.ID + "/portforward?port=0", as(alice), 422, api.CodeValidation},
			{"port 70000", v.ID + "/portforward?port=70000", as(alice), 422, api.CodeValidation},
			{"no port", v.ID + "/portforward", as(alice), 422, api.CodeValidation},
			{"nothing listening", v.ID + "/portforward?port=22", as(alice), 502, api.CodePortClosed},
			{"network none", none.ID + "/portforward?port=9000", as(alice), 409, api.CodeConflict},
			{"no credentials", v.ID + "/portforward?port=9000", http.Header{"Origin": {ce.cs.srv.URL}}, 403, api.CodeInvalidToken},
		} {
			_, status, body := wsDial(t, ws+tc.path, tc.hdr)
			wantError(t, status, body, tc.status, tc.code)
		}

		// A cookie client's one-time link: one stream, then 403; expired: 403.
		var pr api.PortForwardResponse
		ce.on(alice).mustDo("POST", "/vms/"+v.ID+"/portforward?port=9000", nil, 200, &pr)
		if pr.Port != 9000 || !strings.Contains(pr.WSURL, "token=") {
			t.Fatalf("token answer %+v", pr)
		}
		if _, status, _ := wsDial(t, pr.WSURL, nil); status != http.StatusSwitchingProtocols {
			t.Fatalf("one-time link: %d", status)
		}
		_, status, body := wsDial(t, pr.WSURL, nil)
		wantError(t, status, body, 403, api.CodeInvalidToken)
		ce.on(alice).mustDo("POST", "/vms/"+v.ID+"/portforward?port=9000", nil, 200, &pr)
		ce.clock.Advance(console.DefaultTokenTTL + time.Second)
		_, status, body = wsDial(t, pr.WSURL, nil)
		wantError(t, status, body, 403, api.CodeInvalidToken)
		// A token for port 9000 opens no other port.
		ce.on(alice).mustDo("POST", "/vms/"+v.ID+"/portforward?port=9000", nil, 200, &pr)
		_, status, body = wsDial(t, strings.Replace(pr.WSURL, "port=9000", "port=22", 1), nil)
		wantError(t, status, body, 403, api.CodeInvalidToken)
	})
}
