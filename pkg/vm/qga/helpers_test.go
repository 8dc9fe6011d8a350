package qga_test

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/vm/qga"
)

// blocked are the RPCs the host's qemu-ga must never run for a test: they
// would shut down, suspend or freeze the machine the tests run on, or
// change its clock, users or keys. Shutdown and FsFreeze are tested against
// the fake agent in fake_test.go instead.
var blocked = []string{
	"guest-shutdown", "guest-suspend-disk", "guest-suspend-ram", "guest-suspend-hybrid",
	"guest-fsfreeze-freeze", "guest-fsfreeze-freeze-list", "guest-fsfreeze-thaw", "guest-fstrim",
	"guest-set-time", "guest-set-user-password", "guest-set-vcpus", "guest-set-memory-blocks",
	"guest-ssh-add-authorized-keys", "guest-ssh-remove-authorized-keys",
}

// hostAgent is the real qemu-ga (Debian's qemu-guest-agent) running on the
// host as the tests' peer. It listens on a unix socket itself (-m
// unix-listen), where in production QEMU listens and relays to the guest's
// agent; the client dials a listening socket either way. As root it runs as
// nobody, so its commands cannot harm the host and file permissions mean
// something; its files and state stay under the test's t.TempDir().
type hostAgent struct {
	t    testing.TB
	Dir  string // owned by the agent's user: the tests' guest files go here
	Sock string
	cred *syscall.Credential
	argv []string
	cmd  *exec.Cmd
	log  *os.File
}

func startHostAgent(t testing.TB) *hostAgent {
	t.Helper()
	bin, err := exec.LookPath("qemu-ga")
	if err != nil {
		t.Fatalf("qemu-ga is required (make deps installs qemu-guest-agent): %v", err)
	}
	base := t.TempDir()
	// The socket is in the state directory, where the agent's user may
	// create it.
	a := &hostAgent{t: t, Dir: filepath.Join(base, "guest"), Sock: filepath.Join(base, "state", "qga.sock")}
	if err := os.MkdirAll(filepath.Join(base, "state"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(a.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Fatalf("user nobody: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		a.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		// nobody must reach its directories through t.TempDir()'s (0700).
		for _, d := range []string{filepath.Dir(base), base} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, d := range []string{a.Dir, filepath.Join(base, "state")} {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	a.log, err = os.Create(filepath.Join(base, "qemu-ga.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			b, _ := os.ReadFile(a.log.Name())
			t.Logf("qemu-ga log:\n%s", b)
		}
		a.log.Close()
	})
	state := filepath.Join(base, "state")
	a.argv = []string{bin, "-m", "unix-listen", "-p", a.Sock,
		"-t", state, "-f", filepath.Join(state, "qemu-ga.pid"),
		"-b", strings.Join(blocked, ",")}
	a.start()
	return a
}

// start runs qemu-ga and waits until it accepts connections.
func (a *hostAgent) start() {
	a.t.Helper()
	cmd := exec.Command(a.argv[0], a.argv[1:]...)
	cmd.Stdout, cmd.Stderr = a.log, a.log
	// A guest's agent has a system PATH, not the test runner's.
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	// Pdeathsig: a crashed test binary does not leave the agent behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: a.cred, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		a.t.Fatalf("start qemu-ga: %v", err)
	}
	a.cmd = cmd
	waitFor(a.t, "qemu-ga to listen", 10*time.Second, func() bool {
		if !alive(cmd.Process.Pid) {
			a.t.Fatalf("qemu-ga exited at start")
		}
		c, err := net.Dial("unix", a.Sock)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// kill ends qemu-ga at once, as a crash or a guest reboot would.
func (a *hostAgent) kill() {
	if a.cmd != nil && a.cmd.ProcessState == nil {
		_ = a.cmd.Process.Kill()
		_ = a.cmd.Wait()
	}
}

func (a *hostAgent) stop() {
	if a.cmd != nil && a.cmd.ProcessState == nil {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = a.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = a.cmd.Process.Kill()
			<-done
		}
	}
}

// client returns a client of the host agent, closed at the test's end.
func (a *hostAgent) client(t testing.TB, opt qga.Options) *qga.Client {
	return newClient(t, a.Sock, opt)
}

// newClient checks for leaked goroutines once the client is closed.
func newClient(t testing.TB, sock string, opt qga.Options) *qga.Client {
	t.Helper()
	noLeak(t)
	c := qga.New(sock, opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// noLeak fails the test when, after its other cleanups (registered later,
// so run earlier), more goroutines run than before it.
func noLeak(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		waitFor(t, "goroutines to end", 5*time.Second, func() bool { return runtime.NumGoroutine() <= before })
	})
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !testutil.WaitFor(timeout, cond) {
		buf := make([]byte, 1<<16)
		t.Fatalf("timed out after %v waiting for %s\n%s", timeout, what, buf[:runtime.Stack(buf, true)])
	}
}

// alive tells whether a process exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name's closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// readPID waits for a pid file a guest command writes.
func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, "pid file "+path, 10*time.Second, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}
