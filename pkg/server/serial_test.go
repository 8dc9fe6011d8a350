package server_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/serial"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm"
)

// echoSerial plays a guest's serial chardev socket: one client at a time,
// it prints a prompt and echoes what is typed. It counts its connections.
func echoSerial(t *testing.T, sock string) *atomic.Int32 {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(sock), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	conns := new(atomic.Int32)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				c.Write([]byte("~ # "))
				buf := make([]byte, 1024)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					c.Write(buf[:n])
				}
			}()
		}
	}()
	return conns
}

// readWS reads binary frames until their text holds want.
func readWS(t *testing.T, ws *websocket.Conn, want string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var sb strings.Builder
	for !strings.Contains(sb.String(), want) {
		typ, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("read %q so far, want %q: %v", sb.String(), want, err)
		}
		if typ != websocket.MessageBinary {
			t.Fatalf("frame type %v, want binary", typ)
		}
		sb.Write(b)
	}
	return sb.String()
}

func TestSerialConsole(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ce := newConsoleEnv(t, b, nil)
		alice, bob := ce.signup("alice@example.com"), ce.signup("bob@example.com")
		v := ce.runningVM(alice, "web")
		conns := echoSerial(t, ce.layout.Socket(v.ID, vm.SerialSocket))
		ctx := context.Background()

		writer, st, data := wsDial(t, ce.token(alice, "web").WSURL+"&type=serial", nil)
		if writer == nil {
			t.Fatalf("serial refused %d: %s", st, data)
		}
		readWS(t, writer, "~ # ")
		if err := writer.Write(ctx, websocket.MessageBinary, []byte("echo hi\r")); err != nil {
			t.Fatal(err)
		}
		readWS(t, writer, "echo hi\r")

		// A second connection watches: it is told so, sees the writer's
		// typing, and its own keys go nowhere.
		watcher, st, data := wsDial(t, ce.token(alice, "web").WSURL+"&type=serial", nil)
		if watcher == nil {
			t.Fatalf("second serial refused %d: %s", st, data)
		}
		readWS(t, watcher, serial.NoticeWatching)
		if ce.con.SerialWatchers(v.ID) != 2 {
			t.Fatalf("watchers %d, want 2", ce.con.SerialWatchers(v.ID))
		}
		watcher.Write(ctx, websocket.MessageBinary, []byte("rm -rf /\r"))
		writer.Write(ctx, websocket.MessageBinary, []byte("uptime\r"))
		got := readWS(t, watcher, "uptime\r")
		if strings.Contains(got, "rm -rf") {
			t.Fatalf("the watcher's keys reached the guest: %q", got)
		}

		// write=true takes typing over.
		taker, st, data := wsDial(t, ce.token(alice, "web").WSURL+"&type=serial&write=true", nil)
		if taker == nil {
			t.Fatalf("takeover refused %d: %s", st, data)
		}
		readWS(t, writer, serial.NoticeTakenOver)
		if n := conns.Load(); n != 1 {
			t.Fatalf("%d connections to the guest's serial socket, want vmd's one", n)
		}

		// Bob neither gets a token for alice's VM nor opens it with his own.
		st, data = ce.on(bob).do("GET", "/vms/"+v.ID+"/console", nil, nil)
		wantError(t, st, data, 404, api.CodeNotFound)
		bv := ce.runningVM(bob, "bweb")
		tok := ce.token(bob, "bweb")
		_, st, data = wsDial(t, strings.Replace(tok.WSURL, bv.ID, v.ID, 1)+"&type=serial", nil)
		wantError(t, st, data, 403, api.CodeInvalidToken)

		// An unknown type is refused before the token is spent.
		tok = ce.token(alice, "web")
		_, st, data = wsDial(t, tok.WSURL+"&type=sound", nil)
		wantError(t, st, data, 400, api.CodeBadRequest)
		if ws, st, data := wsDial(t, tok.WSURL+"&type=serial", nil); ws == nil {
			t.Fatalf("the token was spent by a refused request: %d %s", st, data)
		}

		// A token of a session that logged out opens nothing; logging out
		// closes that session's serial consoles.
		unused := ce.token(alice, "web")
		ce.on(alice).mustDo("POST", "/auth/logout", nil, 204, nil)
		closedWithin(t, writer, 2*time.Second)
		_, st, data = wsDial(t, unused.WSURL+"&type=serial", nil)
		wantError(t, st, data, 403, api.CodeInvalidToken)
	})
}
