package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/draw"
	"image/png"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/client"
	"github.com/vmdhq/vmd/pkg/rfb"
	"github.com/vmdhq/vmd/pkg/rfb/rfbtest"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// TestConsoleThroughVMD reaches a real guest's screen through vmd's console
// proxy and through `vmctl console --tunnel`, and is refused for another user.
func TestConsoleThroughVMD(t *testing.T) {
	parallel(t, 1)
	v := startVMD(t, storetest.Backends()[0])
	c := loggedIn(t, v, "ada@example.com")
	c.must(0, "", "create", "web", "--template", "tiny", "--memory", "128", "--wait", "--timeout", "2m")
	vm := getVM(t, c, "web")
	v.waitSerial(t, vm, "vmd-tiny: booted", 90*time.Second)

	url := strings.TrimSpace(c.must(0, "", "console", "web", "--print-url"))
	if !strings.HasPrefix(url, v.URL+"/console/"+vm.ID+"#token=") {
		t.Fatalf("console url = %q", url)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	api := client.New(v.URL, "")
	lr, err := api.Login(ctx, "ada@example.com", "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	ada := client.New(v.URL, lr.Token)

	t.Run("proxy", func(t *testing.T) {
		conn, err := ada.DialConsole(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		screen(ctx, t, conn)
	})

	t.Run("tunnel", func(t *testing.T) {
		addr := freeAddr(t)
		cmd := exec.Command(filepath.Join(binDir, "vmctl"), "console", "web", "--tunnel", addr)
		cmd.Env = c.env
		errb := &testutil.SyncBuffer{}
		cmd.Stderr = errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		var conn net.Conn
		if !testutil.WaitFor(10*time.Second, func() bool { conn, err = net.Dial("tcp", addr); return err == nil }) {
			t.Fatalf("tunnel not listening: %v\n%s", err, errb.String())
		}
		screen(ctx, t, conn)
		// A second viewer through the same tunnel gets its own fresh token.
		conn2, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		screen(ctx, t, conn2)
	})

	t.Run("another user is refused", func(t *testing.T) {
		loggedIn(t, v, "bob@example.com")
		lr, err := api.Login(ctx, "bob@example.com", "correct horse battery")
		if err != nil {
			t.Fatal(err)
		}
		bob := client.New(v.URL, lr.Token)
		if _, err := bob.DialConsole(ctx, vm.ID); !client.IsNotFound(err) {
			t.Fatalf("bob's console of ada's VM: %v", err)
		}
	})

	t.Run("view-only input is dropped by the proxy; presence lists both", func(t *testing.T) {
		vo, err := ada.DialConsoleViewOnly(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		defer vo.Close()
		if _, err := rfb.Handshake(ctx, vo); err != nil {
			t.Fatal(err)
		}
		// Straight RFB key events, as a modified page would send them.
		typeRFB(t, vo, "echo VOKEY-DROPPED > /dev/ttyS0\n")
		full, err := ada.DialConsole(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		defer full.Close()
		if _, err := rfb.Handshake(ctx, full); err != nil {
			t.Fatal(err)
		}
		sessions, err := ada.ConsoleSessions(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		if len(sessions) != 2 || !sessions[0].ViewOnly || sessions[1].ViewOnly || sessions[0].Email != "ada@example.com" {
			t.Fatalf("presence: %+v", sessions)
		}
		// The same keys from a full session reach the guest, after the dropped ones would have.
		typeRFB(t, full, "echo VOKEY-PASSED > /dev/ttyS0\n")
		serial := waitSerial(t, v, vm.ID, "VOKEY-PASSED", 30*time.Second)
		if strings.Contains(serial, "VOKEY-DROPPED") {
			t.Fatal("a view-only session's keys reached the guest")
		}
		bob := loggedIn(t, v, "dave@example.com")
		if _, errOut, code := bob.run("", "console", vm.ID, "--print-url"); code == 0 {
			t.Fatalf("another user's console: %s", errOut)
		}
	})

	t.Run("share links: minted, listed, traded for view-only tokens, revoked", func(t *testing.T) {
		link := strings.TrimSpace(c.must(0, "", "console", "web", "--share", "--ttl", "10m"))
		secret, ok := strings.CutPrefix(link, v.URL+"/console/"+vm.ID+"#link=")
		if !ok {
			t.Fatalf("share url = %q", link)
		}
		list := c.must(0, "", "console", "web", "--links")
		id := strings.Fields(list)[0]
		if !strings.HasPrefix(id, "lnk_") || strings.Count(list, "\n") != 1 {
			t.Fatalf("--links: %q", list)
		}
		trade := func() (int, string) {
			res, err := http.Post(v.URL+"/api/v1/vms/"+vm.ID+"/console/link-token", "application/json",
				strings.NewReader(`{"link":"`+secret+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var b bytes.Buffer
			_, _ = b.ReadFrom(res.Body)
			return res.StatusCode, b.String()
		}
		if code, body := trade(); code != 200 || !strings.Contains(body, `"view_only":true`) {
			t.Fatalf("link token without an account: %d %s", code, body)
		}
		// Links are in the database: a restarted vmd still honours one, view-only.
		v.stop()
		v.start()
		if out := c.must(0, "", "console", "web", "--links"); !strings.HasPrefix(out, id) {
			t.Fatalf("--links after a vmd restart: %q", out)
		}
		code, body := trade()
		var tok struct {
			WSURL    string `json:"ws_url"`
			ViewOnly bool   `json:"view_only"`
		}
		if err := json.Unmarshal([]byte(body), &tok); code != 200 || err != nil || !tok.ViewOnly {
			t.Fatalf("link token after a vmd restart: %d %s", code, body)
		}
		ws, _, err := websocket.Dial(ctx, tok.WSURL, &websocket.DialOptions{
			HTTPHeader: http.Header{"Origin": {v.URL}}, Subprotocols: []string{client.ConsoleSubprotocol}})
		if err != nil {
			t.Fatalf("open a share link's console after a vmd restart: %v", err)
		}
		screen(ctx, t, websocket.NetConn(ctx, ws, websocket.MessageBinary))
		c.must(0, "", "console", "web", "--revoke", id)
		if out := c.must(0, "", "console", "web", "--links"); strings.TrimSpace(out) != "" {
			t.Fatalf("--links after revoke: %q", out)
		}
		if code, body := trade(); code != 403 {
			t.Fatalf("revoked link: %d %s", code, body)
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		conn, err := ada.DialConsole(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		rc, err := rfb.Handshake(ctx, conn)
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "web.png")
		start := time.Now()
		c.must(0, "", "screenshot", "web", "-o", file)
		took := time.Since(start)
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("not a png: %v", err)
		}
		if b := img.Bounds(); b.Dx() != int(rc.Width) || b.Dy() != int(rc.Height) {
			t.Fatalf("screenshot is %v, the guest's screen %dx%d", b.Size(), rc.Width, rc.Height)
		}
		rgba := image.NewRGBA(img.Bounds())
		draw.Draw(rgba, rgba.Bounds(), img, image.Point{}, draw.Src)
		if rfb.Colours(rgba, 3) < 2 {
			t.Fatal("screenshot is one colour")
		}
		saveArtifact(t, "screenshot-api.png", data)
		t.Logf("vmctl screenshot: %dx%d, %d bytes in %s", rc.Width, rc.Height, len(data), took.Round(time.Millisecond))
		// Stdout only when it is not a terminal (here a pipe).
		if out := c.must(0, "", "screenshot", "web", "-o", "-"); !strings.HasPrefix(out, "\x89PNG") {
			t.Fatalf("-o - wrote %d bytes that are not a PNG", len(out))
		}
		carol := loggedIn(t, v, "carol@example.com")
		if _, errOut, code := carol.run("", "screenshot", vm.ID, "-o", file+".carol"); code == 0 || !strings.Contains(errOut, "not found") {
			t.Fatalf("another user's screenshot: exit %d: %s", code, errOut)
		}
	})

	t.Run("logout closes the console and the event stream", func(t *testing.T) {
		lr, err := api.Login(ctx, "ada@example.com", "correct horse battery")
		if err != nil {
			t.Fatal(err)
		}
		sess := client.New(v.URL, lr.Token)
		conn, err := sess.DialConsole(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := rfb.Handshake(ctx, conn); err != nil {
			t.Fatal(err)
		}
		stream, err := sess.OpenEvents(ctx, client.FromNow, false)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		if err := sess.Logout(ctx); err != nil {
			t.Fatal(err)
		}
		// Nothing is asked of the guest, so only the close ends this read.
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		var buf [4096]byte
		for {
			_, err := conn.Read(buf[:])
			if err == nil {
				continue
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("console still open 1 s after logout")
			}
			break
		}
		select {
		case _, ok := <-stream.Changes():
			if ok {
				t.Fatal("a change after logout")
			}
		case <-time.After(time.Second):
			t.Fatal("event stream still open 1 s after logout")
		}
		if !client.HasCode(stream.Err(), "unauthenticated") {
			t.Fatalf("event stream ended with %v, want unauthenticated on reconnect", stream.Err())
		}
	})

	t.Run("metrics", func(t *testing.T) {
		res, err := http.Get(v.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(res.Body)
		for _, m := range []string{"console_active_sessions", "console_bytes_total", "console_time_to_first_update_seconds_count", "api_requests_total"} {
			if !strings.Contains(b.String(), m) {
				t.Errorf("/metrics lacks %s", m)
			}
		}
	})
}

// screen runs the RFB handshake on conn and waits for a frame with text on it.
func screen(ctx context.Context, t *testing.T, conn net.Conn) {
	t.Helper()
	defer conn.Close()
	rc, err := rfb.Handshake(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Width < 640 || rc.Height < 400 {
		t.Fatalf("server init: %dx%d", rc.Width, rc.Height)
	}
	img := rfbtest.WaitForText(ctx, t, rc, 30*time.Second)
	if rfb.Colours(img, 3) < 2 {
		t.Fatal("screen is one colour")
	}
}

// typeRFB sends text as RFB key events (Shift around the characters that
// need it on a US keyboard), as noVNC's "Type it" does.
func typeRFB(t *testing.T, conn net.Conn, text string) {
	t.Helper()
	key := func(sym uint32, down bool) {
		b := []byte{4, 0, 0, 0, byte(sym >> 24), byte(sym >> 16), byte(sym >> 8), byte(sym)}
		if down {
			b[1] = 1
		}
		if _, err := conn.Write(b); err != nil {
			t.Fatalf("send key: %v", err)
		}
	}
	for _, ch := range text {
		sym := uint32(ch)
		if ch == '\n' {
			sym = 0xff0d
		}
		shift := strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZ~!@#$%^&*()_+{}|:\"<>?", ch)
		if shift {
			key(0xffe1, true)
		}
		key(sym, true)
		key(sym, false)
		if shift {
			key(0xffe1, false)
		}
	}
}
