package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/console"
	"github.com/vmdhq/vmd/pkg/console/consoletest"
	"github.com/vmdhq/vmd/pkg/server"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm"
)

// consoleEnv is env plus a second server on the same store and accounts
// that has the console enabled, its public URL being its own address.
type consoleEnv struct {
	*env
	cs     *env
	con    *console.Console
	layout vm.Layout
	log    *testutil.SyncBuffer
}

func newConsoleEnv(t *testing.T, b storetest.Backend, tune func(*console.Config)) *consoleEnv {
	t.Helper()
	e := newEnv(t, b)
	run, err := os.MkdirTemp("", "vmdc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	ce := &consoleEnv{env: e, layout: vm.Layout{DataDir: t.TempDir(), RunDir: run}, log: &testutil.SyncBuffer{}}
	var h http.Handler
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(hs.Close)
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewJSONHandler(ce.log, nil))
	cfg := console.Config{PublicURL: hs.URL, Store: e.store, Sockets: console.LayoutSockets{Layout: ce.layout},
		Registry: reg, Log: log, Now: e.clock.Now}
	if tune != nil {
		tune(&cfg)
	}
	if ce.con, err = console.New(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ce.con.Close)
	s, err := server.New(server.Config{Accounts: e.accounts, VMs: vm.NewService(vm.ServiceConfig{Store: e.store, Node: "test"}),
		Store: e.store, PublicURL: hs.URL, Log: log, Registry: reg, Version: "test", Console: ce.con})
	if err != nil {
		t.Fatal(err)
	}
	h = s
	cs := *e
	cs.srv = hs
	ce.cs = &cs
	return ce
}

// runningVM creates a VM through the API and marks it running, with a
// silent listener on its VNC socket.
func (ce *consoleEnv) runningVM(u *user, name string) api.VM {
	ce.t.Helper()
	var v api.VM
	u.mustDo("POST", "/vms", api.CreateVMRequest{Name: name, Template: "tiny"}, 201, &v)
	consoletest.Silent(ce.t, ce.layout.Socket(v.ID, vm.VNCSocket))
	if _, err := ce.store.SetState(context.Background(), v.ID, api.StateRunning, "test"); err != nil {
		ce.t.Fatal(err)
	}
	return v
}

// on returns u acting against the console server.
func (ce *consoleEnv) on(u *user) *user { c := *u; c.e = ce.cs; return &c }

func (ce *consoleEnv) token(u *user, ref string) api.ConsoleResponse {
	ce.t.Helper()
	var res api.ConsoleResponse
	ce.on(u).mustDo("GET", "/vms/"+ref+"/console", nil, 200, &res)
	return res
}

// wsDial opens ws_url; on refusal it returns the status and error body.
func wsDial(t *testing.T, wsURL string, hdr http.Header) (*websocket.Conn, int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if hdr == nil {
		hdr = http.Header{}
	}
	if _, ok := hdr["Origin"]; !ok && hdr.Get("Authorization") == "" {
		// As the console page in a browser would.
		u, _ := url.Parse(wsURL)
		hdr.Set("Origin", strings.Replace(u.Scheme, "ws", "http", 1)+"://"+u.Host)
	}
	c, res, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{Subprotocols: []string{"binary"}, HTTPHeader: hdr})
	if err == nil {
		t.Cleanup(func() { c.CloseNow() })
		return c, res.StatusCode, nil
	}
	if res == nil {
		t.Fatalf("dial: %v", err)
	}
	var body bytes.Buffer
	if res.Body != nil {
		_, _ = body.ReadFrom(res.Body)
	}
	return nil, res.StatusCode, body.Bytes()
}

func TestConsoleToken(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ce := newConsoleEnv(t, b, nil)
		alice, bob := ce.signup("alice@example.com"), ce.signup("bob@example.com")
		v := ce.runningVM(alice, "web")
		for _, ref := range []string{"web", v.ID} {
			res := ce.token(alice, ref)
			if !strings.HasPrefix(res.URL, ce.cs.srv.URL+"/console/"+v.ID+"#token=") ||
				!strings.HasPrefix(res.WSURL, "ws"+strings.TrimPrefix(ce.cs.srv.URL, "http")+"/api/v1/vms/"+v.ID+"/console/ws?token=") {
				t.Fatalf("console of %s: %+v", ref, res)
			}
		}
		st, data := ce.on(bob).do("GET", "/vms/"+v.ID+"/console", nil, nil)
		wantError(t, st, data, 404, api.CodeNotFound)
		var stopped api.VM
		alice.mustDo("POST", "/vms", api.CreateVMRequest{Name: "off", Template: "tiny"}, 201, &stopped)
		st, data = ce.on(alice).do("GET", "/vms/off/console", nil, nil)
		wantError(t, st, data, 409, api.CodeConflict)
		st, data = (&user{e: ce.cs, client: ce.cs.srv.Client()}).do("GET", "/vms/"+v.ID+"/console", nil, nil)
		wantError(t, st, data, 401, api.CodeUnauthenticated)
		// Without a console the routes answer 503, not 404.
		st, data = alice.do("GET", "/vms/web/console", nil, nil)
		wantError(t, st, data, 503, api.CodeUnavailable)
	})
}

// TestConsoleWSRefusals checks every refusal goes out before the upgrade as
// the API's error shape, and that the token never reaches the access log.
func TestConsoleWSRefusals(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ce := newConsoleEnv(t, b, func(c *console.Config) { c.MaxPerVM = 1 })
		alice, bob := ce.signup("alice@example.com"), ce.signup("bob@example.com")
		v := ce.runningVM(alice, "web")
		origin := http.Header{"Origin": {ce.cs.srv.URL}}

		t.Run("other user's bearer", func(t *testing.T) {
			_, st, data := wsDial(t, ce.token(alice, "web").WSURL, http.Header{"Authorization": {"Bearer " + bob.token}})
			wantError(t, st, data, 403, api.CodeForbidden)
		})
		t.Run("cross origin", func(t *testing.T) {
			_, st, data := wsDial(t, ce.token(alice, "web").WSURL, http.Header{"Origin": {"http://evil.example"}})
			wantError(t, st, data, 403, api.CodeForbidden)
		})
		t.Run("expired", func(t *testing.T) {
			res := ce.token(alice, "web")
			ce.clock.Advance(61 * time.Second)
			_, st, data := wsDial(t, res.WSURL, nil)
			wantError(t, st, data, 403, api.CodeInvalidToken)
		})
		t.Run("no token", func(t *testing.T) {
			u, _ := url.Parse(ce.token(alice, "web").WSURL)
			u.RawQuery = ""
			_, st, data := wsDial(t, u.String(), nil)
			wantError(t, st, data, 403, api.CodeInvalidToken)
		})
		// Alice's own bearer from the same origin is accepted.
		res := ce.token(alice, "web")
		hdr := origin.Clone()
		hdr.Set("Authorization", "Bearer "+alice.token)
		open, st, data := wsDial(t, res.WSURL, hdr)
		if open == nil {
			t.Fatalf("refused %d: %s", st, data)
		}
		t.Run("reused", func(t *testing.T) {
			_, st, data := wsDial(t, res.WSURL, nil)
			wantError(t, st, data, 403, api.CodeInvalidToken)
		})
		t.Run("too many sessions", func(t *testing.T) {
			_, st, data := wsDial(t, ce.token(alice, "web").WSURL, nil)
			wantError(t, st, data, 429, api.CodeRateLimited)
			open.CloseNow()
		})
		t.Run("deleted vm", func(t *testing.T) {
			res := ce.token(alice, "web")
			if err := ce.store.DeleteVM(context.Background(), v.ID); err != nil {
				t.Fatal(err)
			}
			_, st, data := wsDial(t, res.WSURL, nil)
			wantError(t, st, data, 404, api.CodeNotFound)
		})
		logs := ce.log.String()
		if !strings.Contains(logs, "/console/ws") {
			t.Fatalf("no console request in the access log: %s", logs)
		}
		if strings.Contains(logs, "token=") {
			t.Fatalf("a console token reached the log: %s", logs)
		}
		for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
		}
	})
}

// TestShareLinkTTLRefused: a share link's TTL that is no duration, or one
// out of bounds, is the mapper's 422 with the same sentence either way.
func TestShareLinkTTLRefused(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ce := newConsoleEnv(t, b, nil)
		alice := ce.signup("alice@example.com")
		ce.runningVM(alice, "web")
		for _, ttl := range []string{"banana", "1s", "1000h"} {
			st, data := ce.on(alice).do("POST", "/vms/web/console/links", api.CreateShareLinkRequest{TTL: ttl}, nil)
			wantError(t, st, data, 422, api.CodeValidation)
			var eb api.ErrorBody
			if err := json.Unmarshal(data, &eb); err != nil || eb.Error.Message != "ttl: "+console.ErrLinkTTL.Error() || eb.Error.RequestID == "" {
				t.Fatalf("ttl %q: %s", ttl, data)
			}
		}
		ce.on(alice).mustDo("POST", "/vms/web/console/links", api.CreateShareLinkRequest{TTL: "10m"}, 201, nil)
	})
}
