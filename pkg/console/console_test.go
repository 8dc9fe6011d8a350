package console_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/console"
	"github.com/vmdhq/vmd/pkg/console/consoletest"
	"github.com/vmdhq/vmd/pkg/rfb"
	"github.com/vmdhq/vmd/pkg/rfb/rfbtest"
	"github.com/vmdhq/vmd/pkg/store"
)

func issue(t *testing.T, e *consoletest.Env, u store.User, v store.VM) api.ConsoleResponse {
	t.Helper()
	res, err := e.Console.Issue(context.Background(), u, "", v)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// asBrowser adds the Origin a browser on the server's own page sends, unless
// hdr already names an Origin or credentials.
func asBrowser(wsURL string, hdr http.Header) http.Header {
	if hdr == nil {
		hdr = http.Header{}
	}
	if _, ok := hdr["Origin"]; !ok && hdr.Get("Authorization") == "" {
		u, _ := url.Parse(wsURL)
		hdr.Set("Origin", strings.Replace(u.Scheme, "ws", "http", 1)+"://"+u.Host)
	}
	return hdr
}

func dial(t *testing.T, wsURL string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	hdr = asBrowser(wsURL, hdr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, res, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{Subprotocols: []string{console.Subprotocol}, HTTPHeader: hdr})
	if err == nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, res, err
}

func mustDial(t *testing.T, wsURL string) *websocket.Conn {
	t.Helper()
	c, _, err := dial(t, wsURL, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", redact(wsURL), err)
	}
	return c
}

// refused dials and wants the upgrade refused with ServeWS's error want.
func refused(t *testing.T, e *consoletest.Env, wsURL string, hdr http.Header, want error) {
	t.Helper()
	_, res, err := dial(t, wsURL, hdr)
	if err == nil {
		t.Fatalf("connected, want %v", want)
	}
	if res == nil || res.StatusCode != http.StatusForbidden {
		t.Fatalf("dial: %v (%v), want a 403 refusal before the upgrade", err, res)
	}
	if got := e.LastErr(); !errors.Is(got, want) {
		t.Fatalf("refused with %v, want %v", got, want)
	}
}

// A program (no Origin) must show who it is: a token alone is not enough.
func TestRefuseNoOriginWithoutCredentials(t *testing.T) {
	e := consoletest.New(t, nil)
	alice := e.AddUser(t, "alice")
	v := e.AddVM(t, alice, "web", false)
	res := issue(t, e, alice, v)
	refused(t, e, res.WSURL, http.Header{"Origin": nil}, console.ErrWrongUser)
	// The refusal came before the token was taken: with credentials it still opens.
	ws, _, err := dial(t, res.WSURL, http.Header{"Authorization": {"Bearer " + alice.ID}})
	if err != nil {
		t.Fatalf("no Origin, bearer: %v", err)
	}
	ws.CloseNow()
}

func redact(u string) string { s, _, _ := strings.Cut(u, "?"); return s }

func TestIssueURLs(t *testing.T) {
	e := consoletest.New(t, nil)
	alice := e.AddUser(t, "alice")
	v := e.AddVM(t, alice, "web", false)
	res := issue(t, e, alice, v)
	wu, _ := url.Parse(res.WSURL)
	tok := wu.Query().Get("token")
	if len(tok) != 43 { // 32 bytes, base64url without padding
		t.Fatalf("token %q", tok)
	}
	if want := e.Server.URL + "/console/" + v.ID + "#token=" + tok; res.URL != want {
		t.Fatalf("url %s, want %s", res.URL, want)
	}
	if want := "ws" + strings.TrimPrefix(e.Server.URL, "http") + "/api/v1/vms/" + v.ID + "/console/ws?token=" + tok; res.WSURL != want {
		t.Fatalf("ws_url %s, want %s", res.WSURL, want)
	}
	if d := time.Until(res.ExpiresAt); d < 55*time.Second || d > 61*time.Second {
		t.Fatalf("expires in %s, want 60 s", d)
	}
	if other := issue(t, e, alice, v); other.WSURL == res.WSURL {
		t.Fatal("two tokens are equal")
	}
	stopped := v
	stopped.State = api.StateStopped
	if _, err := e.Console.Issue(context.Background(), alice, "", stopped); !errors.Is(err, console.ErrNotRunning) {
		t.Fatalf("issue for a stopped vm: %v", err)
	}
}

func TestPublicURLSchemes(t *testing.T) {
	for _, c := range []struct{ public, wantURL, wantWS string }{
		{"https://vmd.example.com", "https://vmd.example.com/console/", "wss://vmd.example.com/api/v1/vms/"},
		{"https://example.com/vmd/", "https://example.com/vmd/console/", "wss://example.com/vmd/api/v1/vms/"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/console/", "ws://127.0.0.1:8080/api/v1/vms/"},
	} {
		e := consoletest.New(t, func(cfg *console.Config) { cfg.PublicURL = c.public; cfg.Registry = nil })
		alice := e.AddUser(t, "alice")
		res := issue(t, e, alice, e.AddVM(t, alice, "web", false))
		if !strings.HasPrefix(res.URL, c.wantURL) || !strings.HasPrefix(res.WSURL, c.wantWS) {
			t.Errorf("%s: url %s ws_url %s", c.public, redact(res.URL), redact(res.WSURL))
		}
	}
	if _, err := console.New(console.Config{PublicURL: "vmd.example.com"}); err == nil {
		t.Error("a public url without scheme was accepted")
	}
}

// TestProxyToQEMU is the "done when" test at the package level: a Go RFB
// client goes through the proxy to a real guest's VNC server.
func TestProxyToQEMU(t *testing.T) {
	e := consoletest.New(t, nil)
	alice := e.AddUser(t, "alice")
	v := e.AddVM(t, alice, "web", true)
	res := issue(t, e, alice, v)
	ws, hres, err := dial(t, res.WSURL, http.Header{"Origin": {e.Server.URL}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if ws.Subprotocol() != console.Subprotocol || hres.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("subprotocol %q status %d", ws.Subprotocol(), hres.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	c, err := rfb.Handshake(ctx, websocket.NetConn(ctx, ws, websocket.MessageBinary))
	if err != nil {
		t.Fatal(err)
	}
	if c.Width < 640 || c.Height < 400 || c.Name != "QEMU" {
		t.Fatalf("server init %dx%d %q", c.Width, c.Height, c.Name)
	}
	img := rfbtest.WaitForText(ctx, t, c, 20*time.Second)
	t.Logf("through the proxy: %dx%d, %d+ colours", c.Width, c.Height, rfb.Colours(img, 16))

	if got := e.Metric(t, "console_active_sessions", ""); got != 1 {
		t.Errorf("console_active_sessions = %v, want 1", got)
	}
	// The proxy counts a chunk after its write returns, which may be after the
	// client has read it. QEMU sends only the changed parts of a screen, so
	// ask for no more than one text-mode frame's worth of pixels.
	testutil.Eventually(t, 5*time.Second, "64 KiB counted to the client", func() bool { return e.Metric(t, "console_bytes_total", "to_client") >= 64<<10 })
	testutil.Eventually(t, 5*time.Second, "14 bytes counted to the VM", func() bool { return e.Metric(t, "console_bytes_total", "to_vm") >= 12+1+1 })
	if got := e.Metric(t, "console_time_to_first_update_seconds", ""); got != 1 {
		t.Errorf("console_time_to_first_update_seconds count = %v, want 1", got)
	}

	// The reconciler's hook closes the session with a reason.
	e.Console.CloseVM(v.ID)
	_, _, err = ws.Read(ctx)
	if websocket.CloseStatus(err) != console.StatusVMStopped {
		t.Fatalf("after CloseVM: %v, want vm stopped (4001)", err)
	}
	testutil.Eventually(t, 5*time.Second, "no active session", func() bool { return e.Metric(t, "console_active_sessions", "") == 0 })
}

func TestRefuseOtherUsersToken(t *testing.T) {
	e := consoletest.New(t, nil)
	alice, bob := e.AddUser(t, "alice"), e.AddUser(t, "bob")
	av, bv := e.AddVM(t, alice, "web", false), e.AddVM(t, bob, "web", false)
	// Bob presents Alice's token with his own credentials.
	refused(t, e, issue(t, e, alice, av).WSURL, http.Header{"Authorization": {"Bearer " + bob.ID}}, console.ErrWrongUser)
	// A token for Bob's VM cannot open Alice's VM, even with the path changed.
	res := issue(t, e, bob, bv)
	refused(t, e, strings.Replace(res.WSURL, bv.ID, av.ID, 1), nil, console.ErrTokenInvalid)
	// Issue itself asks vm.Authorize: no token for Bob on Alice's VM even
	// when the caller skipped the API's lookup.
	if _, err := e.Console.Issue(context.Background(), bob, "", av); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("issue for bob on alice's vm: %v", err)
	}
	// Alice's own credentials with her token are fine.
	ws, _, err := dial(t, issue(t, e, alice, av).WSURL, http.Header{"Authorization": {"Bearer " + alice.ID}})
	if err != nil {
		t.Fatal(err)
	}
	ws.CloseNow()
}

func TestRefuseExpiredToken(t *testing.T) {
	e := consoletest.New(t, nil)
	alice := e.AddUser(t, "alice")
	res := issue(t, e, alice, e.AddVM(t, alice, "web", false))
	e.Clock.Advance(console.DefaultTokenTTL)
	refused(t, e, res.WSURL, nil, console.ErrTokenInvalid)
}

func TestRefuseReusedToken(t *testing.T) {
	e := consoletest.New(t, nil)
	alice := e.AddUser(t, "alice")
	res := issue(t, e, alice, e.AddVM(t, alice, "web", false))
	mustDial(t, res.WSURL)
	refused(t, e, res.WSURL, nil, console.ErrTokenInvalid)
}

func TestRefuseDeletedVM(t *testing.T) {
	e := consoletest.New(t, nil)
	alice := e.AddUser(t, "alice")
	v := e.AddVM(t, alice, "web", false)
	res := issue(t, e, alice, v)
	if err := e.Store.DeleteVM(context.Background(), v.ID); err != nil {
		t.Fatal(err)
	}
	refused(t, e, res.WSURL, nil, store.ErrNotFound)
}

func TestRefuseStoppedVM(t *testing.T) {
	e := consoletest.New(t, nil)
	alice := e.AddUser(t, "alice")
	v := e.AddVM(t, alice, "web", false)
	res := issue(t, e, alice, v)
	if _, err := e.Store.SetState(context.Background(), v.ID, api.StateStopped, "test"); err != nil {
		t.Fatal(err)
	}
	refused(t, e, res.WSURL, nil, console.ErrNotRunning)
}

func TestRefuseCrossOrigin(t *testing.T) {
	e := consoletest.New(t, nil)
	alice := e.AddUser(t, "alice")
	res := issue(t, e, alice, e.AddVM(t, alice, "web", false))
	for _, o := range []string{"http://evil.example", "null", e.Server.URL + ".evil.example",
		strings.Replace(e.Server.URL, "http:", "https:", 1)} {
		refused(t, e, res.WSURL, http.Header{"Origin": {o}}, console.ErrOrigin)
	}
	// Refused before the token was looked at, so it still works from the right origin.
	ws, _, err := dial(t, res.WSURL, http.Header{"Origin": {e.Server.URL}})
	if err != nil {
		t.Fatalf("same origin after cross-origin attempts: %v", err)
	}
	ws.CloseNow()
}

func TestRefuseTooManySessions(t *testing.T) {
	e := consoletest.New(t, func(c *console.Config) { c.MaxPerVM, c.MaxPerUser = 2, 3 })
	alice, bob := e.AddUser(t, "alice"), e.AddUser(t, "bob")
	web, db := e.AddVM(t, alice, "web", false), e.AddVM(t, alice, "db", false)
	open := func(v store.VM) *websocket.Conn { return mustDial(t, issue(t, e, alice, v).WSURL) }

	first := open(web)
	open(web)
	t.Run("per vm", func(t *testing.T) { refused(t, e, issue(t, e, alice, web).WSURL, nil, console.ErrTooManySessions) })
	open(db)
	t.Run("per user", func(t *testing.T) { refused(t, e, issue(t, e, alice, db).WSURL, nil, console.ErrTooManySessions) })
	// Another user is not held back by Alice's sessions.
	mustDial(t, issue(t, e, bob, e.AddVM(t, bob, "web", false)).WSURL)

	first.Close(websocket.StatusNormalClosure, "")
	testutil.Eventually(t, 5*time.Second, "one open session", func() bool { return e.Console.Sessions(web.ID) == 1 })
	open(web)
}

func TestIdleTimeout(t *testing.T) {
	e := consoletest.New(t, func(c *console.Config) { c.IdleTimeout = 400 * time.Millisecond })
	alice := e.AddUser(t, "alice")
	ws := mustDial(t, issue(t, e, alice, e.AddVM(t, alice, "web", false)).WSURL)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, _, err := ws.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("after %s: %v, want an idle close", time.Since(start), err)
	}
}

// TestStatePollClosesSession: a VM stopped behind the console's back (no
// CloseVM call) still ends its sessions.
func TestStatePollClosesSession(t *testing.T) {
	e := consoletest.New(t, nil)
	alice := e.AddUser(t, "alice")
	v := e.AddVM(t, alice, "web", false)
	ws := mustDial(t, issue(t, e, alice, v).WSURL)
	if _, err := e.Store.SetState(context.Background(), v.ID, api.StateStopping, "test"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := ws.Read(ctx)
	if websocket.CloseStatus(err) != console.StatusVMStopped {
		t.Fatalf("%v, want vm stopped (4001)", err)
	}
}

func TestRefuseNonWebSocket(t *testing.T) {
	e := consoletest.New(t, nil)
	alice := e.AddUser(t, "alice")
	res := issue(t, e, alice, e.AddVM(t, alice, "web", false))
	hu := "http" + strings.TrimPrefix(res.WSURL, "ws")
	r, err := http.Get(hu)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusForbidden || !errors.Is(e.LastErr(), console.ErrNotWebSocket) {
		t.Fatalf("plain GET: %d %v", r.StatusCode, e.LastErr())
	}
	mustDial(t, res.WSURL) // the token was not spent by the plain GET
}

func TestTextFramesClose(t *testing.T) {
	e := consoletest.New(t, nil)
	alice := e.AddUser(t, "alice")
	ws := mustDial(t, issue(t, e, alice, e.AddVM(t, alice, "web", false)).WSURL)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, []byte("UkZC")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
		t.Fatalf("%v, want unsupported data", err)
	}
}

// Defect 7: a refused request (wrong path, wrong user, bad WebSocket
// version) does not use its token up; only the upgrade spends it.
func TestRefusalsKeepTheToken(t *testing.T) {
	e := consoletest.New(t, nil)
	alice, bob := e.AddUser(t, "alice"), e.AddUser(t, "bob")
	v, other := e.AddVM(t, alice, "web", false), e.AddVM(t, alice, "db", false)
	res := issue(t, e, alice, v)
	refused(t, e, strings.Replace(res.WSURL, v.ID, other.ID, 1), nil, console.ErrTokenInvalid)
	refused(t, e, res.WSURL, http.Header{"Authorization": {"Bearer " + bob.ID}}, console.ErrWrongUser)
	// Handshakes websocket.Accept would refuse, sent by hand: an old
	// version, a key that is not 16 bytes of base64, two keys, HTTP/1.0.
	for _, c := range []struct {
		name  string
		proto string
		hdr   map[string][]string
	}{
		{"version 8", "", map[string][]string{"Sec-WebSocket-Version": {"8"}}},
		{"short key", "", map[string][]string{"Sec-WebSocket-Key": {"c2hvcnQ="}}},
		{"key not base64", "", map[string][]string{"Sec-WebSocket-Key": {"not base64 at all!!!!!!="}}},
		{"two keys", "", map[string][]string{"Sec-WebSocket-Key": {"dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ=="}}},
		{"http/1.0", "HTTP/1.0", nil},
	} {
		req, _ := http.NewRequest("GET", strings.Replace(res.WSURL, "ws:", "http:", 1), nil)
		for k, v := range map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
			"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": e.Server.URL} {
			req.Header.Set(k, v)
		}
		for k, v := range c.hdr {
			req.Header[k] = v
		}
		if c.proto != "" {
			// net/http's client always speaks HTTP/1.1: call the console directly.
			req.Proto, req.ProtoMinor = c.proto, 0
			if err := e.Console.ServeWS(httptest.NewRecorder(), req, v.ID, ""); !errors.Is(err, console.ErrBadHandshake) {
				t.Fatalf("%s: %v", c.name, err)
			}
			continue
		}
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if !errors.Is(e.LastErr(), console.ErrBadHandshake) {
			t.Fatalf("%s: %d, %v", c.name, r.StatusCode, e.LastErr())
		}
	}
	ws := mustDial(t, res.WSURL)
	ws.CloseNow()
	refused(t, e, res.WSURL, nil, console.ErrTokenInvalid) // and now it is spent
}

// A token belongs to the login session that asked for it: once the
// session ends it opens nothing, and EndSessions closes its consoles.
func TestLoginSessionOwnsConsoles(t *testing.T) {
	e := consoletest.New(t, nil)
	alice := e.AddUser(t, "alice")
	v := e.AddVM(t, alice, "web", false)
	ctx := context.Background()
	sess := store.Session{ID: "s_1", UserID: alice.ID, Kind: "cli", CreatedAt: e.Clock.Now(), ExpiresAt: e.Clock.Now().Add(time.Hour)}
	if err := e.Store.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	open, err := e.Console.Issue(ctx, alice, sess.ID, v)
	if err != nil {
		t.Fatal(err)
	}
	unused, err := e.Console.Issue(ctx, alice, sess.ID, v)
	if err != nil {
		t.Fatal(err)
	}
	ws := mustDial(t, open.WSURL)
	if err := e.Store.RevokeSession(ctx, sess.ID, e.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.Console.LoginSessions().EndSessions(sess.ID)
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, _, err = ws.Read(rctx)
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("console after its session ended: %v", err)
	}
	refused(t, e, unused.WSURL, nil, console.ErrSessionEnded)
}

// Defect 7 against QEMU itself: four opens at once, within the per-VM cap
// of 4, all get a console (QEMU's VNC backlog refused some with EAGAIN).
func TestConcurrentOpensQEMU(t *testing.T) {
	e := consoletest.New(t, nil)
	alice := e.AddUser(t, "alice")
	v := e.AddVM(t, alice, "web", true)
	var urls []string
	for range console.DefaultMaxPerVM {
		urls = append(urls, issue(t, e, alice, v).WSURL)
	}
	errs := make(chan error, len(urls))
	for _, u := range urls {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{Subprotocols: []string{console.Subprotocol},
				HTTPHeader: asBrowser(u, nil)})
			if err != nil {
				errs <- fmt.Errorf("dial: %w (%v)", err, e.LastErr())
				return
			}
			defer ws.CloseNow()
			_, err = rfb.Handshake(ctx, websocket.NetConn(ctx, ws, websocket.MessageBinary))
			errs <- err
		}()
	}
	for range urls {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
