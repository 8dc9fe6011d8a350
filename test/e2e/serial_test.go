package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/client"
	"github.com/vmdhq/vmd/pkg/serial"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// readConn reads conn until its output holds want.
func readConn(t *testing.T, conn net.Conn, want string, timeout time.Duration) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	defer conn.SetReadDeadline(time.Time{})
	var sb strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(sb.String(), want) {
		n, err := conn.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			t.Fatalf("serial: no %q within %s (%v); read:\n%s", want, timeout, err, sb.String())
		}
	}
	return sb.String()
}

// TestSerialConsole drives a real guest's serial port: the test types over
// the serial WebSocket and sees its output in `vmctl logs -f`; `vmctl
// console --serial` in tmux types and reads back, then Ctrl-] detaches and
// leaves the terminal as it was; another user gets 404, a logged-out
// session's token nothing.
func TestSerialConsole(t *testing.T) {
	parallel(t, 1)
	v := startVMD(t, storetest.Backends()[0])
	c := loggedIn(t, v, "ada@example.com")
	c.must(0, "", "create", "web", "--template", "tiny", "--memory", "128", "--wait", "--timeout", "2m")
	vm := getVM(t, c, "web")
	v.waitSerial(t, vm, "vmd-tiny: booted", 90*time.Second)
	if out := c.must(0, "", "logs", "web"); !strings.Contains(out, "vmd-tiny: booted") {
		t.Fatalf("vmctl logs lacks the boot line:\n%s", out)
	}
	if out := c.must(0, "", "logs", "web", "--tail", "1"); strings.Count(strings.TrimRight(out, "\r\n"), "\n") != 0 {
		t.Fatalf("vmctl logs --tail 1 printed more than a line: %q", out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	anon := client.New(v.URL, "")
	lr, err := anon.Login(ctx, "ada@example.com", "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	ada := client.New(v.URL, lr.Token)

	follow := exec.Command(filepath.Join(binDir, "vmctl"), "logs", "web", "-f", "--tail", "1")
	follow.Env = c.env
	var followOut testutil.SyncBuffer
	follow.Stdout = &followOut
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	followDone := make(chan error, 1)
	go func() { followDone <- follow.Wait() }()
	defer func() { _ = follow.Process.Kill() }()

	t.Run("logs -f sees what is typed over the serial websocket", func(t *testing.T) {
		w, err := ada.DialSerial(ctx, "web", false)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		// The shell echoes the command; only its output has the product.
		if _, err := w.Write([]byte("\recho marker-$((6*7))x\r")); err != nil {
			t.Fatal(err)
		}
		readConn(t, w, "marker-42x", 30*time.Second)
		testutil.Eventually(t, 10*time.Second, "the marker in vmctl logs -f", func() bool { return strings.Contains(followOut.String(), "marker-42x") })

		// A second connection only watches and is told so.
		r, err := ada.DialSerial(ctx, "web", false)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		readConn(t, r, strings.TrimSpace(serial.NoticeWatching), 10*time.Second)
		r.Write([]byte("echo watcher-$((2*3))y\r"))
		w.Write([]byte("echo writer-$((3*3))z\r"))
		got := readConn(t, r, "writer-9z", 30*time.Second)
		if strings.Contains(got, "watcher-6y") || strings.Contains(followOut.String(), "watcher-6y") {
			t.Fatalf("a watcher's keys reached the guest:\n%s", got)
		}
	})

	t.Run("console --serial in tmux", func(t *testing.T) {
		tm := newTmux(t)
		script := "env -i TERM=screen " + strings.Join(c.env, " ") + " " + filepath.Join(binDir, "vmctl") +
			" console web --serial; echo \"vmctl exited $?\"; stty -a | grep -q ' icanon' && echo cooked-again; sleep 600"
		tm.run("new-session", "-d", "-s", "tui", "-x", "100", "-y", "30", "sh", "-c", script)
		tm.waitFor(regexp.MustCompile(`Ctrl-\] detaches`), 20*time.Second)
		tm.run("send-keys", "-t", "tui", "-l", "echo hi-$((1+1))")
		tm.run("send-keys", "-t", "tui", "Enter")
		tm.waitFor(regexp.MustCompile(`(?m)^hi-2\s*$`), 30*time.Second)
		tm.run("send-keys", "-t", "tui", "C-]")
		screen := tm.waitFor(regexp.MustCompile(`vmctl exited 0`), 10*time.Second)
		if !strings.Contains(tm.waitFor(regexp.MustCompile(`cooked-again`), 5*time.Second), "Detached from vm web") {
			t.Fatalf("no detach message:\n%s", screen)
		}
	})

	t.Run("tui detail view and shell", func(t *testing.T) {
		tm := newTmux(t)
		script := "env -i TERM=screen " + strings.Join(c.env, " ") + " " + filepath.Join(binDir, "vmctl") + " tui; echo \"vmctl exited $?\"; sleep 600"
		tm.run("new-session", "-d", "-s", "tui", "-x", "120", "-y", "40", "sh", "-c", script)
		tm.waitFor(regexp.MustCompile(`(?m)^> web +running`), 30*time.Second)
		tm.run("send-keys", "-t", "tui", "Enter")
		// The log tail holds what was typed over the serial port earlier.
		tm.waitFor(regexp.MustCompile(`(?s)Events.*Serial log.*hi-2`), 20*time.Second)
		tm.run("send-keys", "-t", "tui", "a") // e is a shell by ssh or exec (TestTUIShell)
		tm.waitFor(regexp.MustCompile(`Ctrl-\] detaches`), 20*time.Second)
		tm.run("send-keys", "-t", "tui", "-l", "echo tui-$((4*4))")
		tm.run("send-keys", "-t", "tui", "Enter")
		tm.waitFor(regexp.MustCompile(`(?m)^tui-16\s*$`), 30*time.Second)
		tm.run("send-keys", "-t", "tui", "C-]")
		tm.waitFor(regexp.MustCompile(`serial console of web ended`), 20*time.Second)
		tm.run("send-keys", "-t", "tui", "q")
		tm.waitFor(regexp.MustCompile(`vmctl exited 0`), 10*time.Second)
	})

	t.Run("another user gets 404", func(t *testing.T) {
		loggedIn(t, v, "bob@example.com")
		blr, err := anon.Login(ctx, "bob@example.com", "correct horse battery")
		if err != nil {
			t.Fatal(err)
		}
		bob := client.New(v.URL, blr.Token)
		if _, err := bob.Logs(ctx, vm.ID, 0, false); !client.IsNotFound(err) {
			t.Fatalf("bob's logs of ada's VM: %v", err)
		}
		if _, err := bob.Logs(ctx, vm.ID, 0, true); !client.IsNotFound(err) {
			t.Fatalf("bob's logs -f of ada's VM: %v", err)
		}
		if _, err := bob.DialSerial(ctx, vm.ID, true); !client.IsNotFound(err) {
			t.Fatalf("bob's serial console of ada's VM: %v", err)
		}
	})

	t.Run("a logged-out session's token is refused", func(t *testing.T) {
		slr, err := anon.Login(ctx, "ada@example.com", "correct horse battery")
		if err != nil {
			t.Fatal(err)
		}
		sess := client.New(v.URL, slr.Token)
		res, err := sess.Console(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		if err := sess.Logout(ctx); err != nil {
			t.Fatal(err)
		}
		_, hr, err := websocket.Dial(ctx, res.WSURL+"&type=serial", &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {v.URL}}})
		if err == nil || hr == nil || hr.StatusCode != http.StatusForbidden {
			t.Fatalf("serial with a logged-out session's token: %v %v", hr, err)
		}
		body, _ := io.ReadAll(hr.Body)
		if !strings.Contains(string(body), "invalid_token") {
			t.Fatalf("refusal body: %s", body)
		}
	})

	// Deleting the VM ends the follow.
	c.must(0, "", "delete", "web", "--yes")
	select {
	case err := <-followDone:
		if err != nil {
			t.Fatalf("vmctl logs -f after delete: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("vmctl logs -f still running 30 s after the VM was deleted")
	}
}
