package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/internal/testutil/netns"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// tmux drives one detached tmux server of its own, so the test's terminal
// is a real pty that vmctl tui draws on and capture-pane reads back.
type tmux struct {
	t    *testing.T
	sock string
}

func newTmux(t *testing.T) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux missing: run `make deps` (%v)", err)
	}
	tm := &tmux{t: t, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	t.Cleanup(func() { _ = exec.Command("tmux", "-S", tm.sock, "kill-server").Run() })
	return tm
}

func (tm *tmux) run(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", tm.sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (tm *tmux) capture() string { return tm.run("capture-pane", "-p", "-t", "tui") }

// waitFor captures the pane until re matches, and returns that screen.
func (tm *tmux) waitFor(re *regexp.Regexp, timeout time.Duration) string {
	tm.t.Helper()
	var screen string
	if !testutil.WaitFor(timeout, func() bool { screen = tm.capture(); return re.MatchString(screen) }) {
		tm.t.Fatalf("no %s on the screen within %s:\n%s", re, timeout, screen)
	}
	return screen
}

// TestTUI runs vmctl tui in tmux against a real vmd: a VM created with
// vmctl shows up and turns running without a key press, and x stops it.
func TestTUI(t *testing.T) {
	parallel(t, 1)
	v := startVMD(t, storetest.Backends()[0])
	c := loggedIn(t, v, "tui@example.com")
	tm := newTmux(t)
	// The shell keeps the pane after vmctl exits, so its exit status and
	// error stay on the screen.
	script := "env -i TERM=screen " + strings.Join(c.env, " ") + " " + filepath.Join(binDir, "vmctl") + " tui; echo \"vmctl exited $?\"; sleep 600"
	tm.run("new-session", "-d", "-s", "tui", "-x", "120", "-y", "30", "sh", "-c", script)

	tm.waitFor(regexp.MustCompile(`No VMs\. Press n to create one\.`), 30*time.Second)
	c.must(0, "", "create", "web", "--template", "tiny", "--memory", "128")
	screen := tm.waitFor(regexp.MustCompile(`(?m)^> web +running +tiny +1 +128MB`), 2*time.Minute)
	if !strings.Contains(screen, "tui@example.com") || !regexp.MustCompile(`VMs +\[[█░]+\] 1\b`).MatchString(screen) {
		t.Fatalf("no user or quota on the screen:\n%s", screen)
	}

	tm.run("send-keys", "-t", "tui", "x")
	screen = tm.waitFor(regexp.MustCompile(`(?m)^> web +stopped +tiny`), 90*time.Second)
	t.Logf("after x:\n%s", screen)
	if vm := getVM(t, c, "web"); vm.State != "stopped" {
		t.Fatalf("the TUI shows stopped, vmd says %s", vm.State)
	}

	tm.run("send-keys", "-t", "tui", "q")
	tm.waitFor(regexp.MustCompile(`vmctl exited 0`), 10*time.Second)
}

// TestTUIShell: e on a running tiny guest without a network opens vmctl
// shell (the guest agent, a line at a time): a command's output shows, cd
// carries over, Ctrl-C kills a running line in the guest, and Ctrl-D comes
// back to the dashboard; e on a guest with
// vmd's network, an address and the template's login user opens vmctl ssh
// (the key in an ssh-agent), and exit comes back. vmd and its
// guests run inside a network namespace the test creates.
func TestTUIShell(t *testing.T) {
	parallel(t, 1)
	if _, inChild := netns.Run(t); !inChild {
		return
	}
	v := startVMD(t, storetest.Backends()[0])
	c := loggedIn(t, v, "shell@example.com")
	// ssh finds keys in the passwd entry's home, not $HOME: the key is
	// offered by an ssh-agent, as a user's usually is.
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	agentSock := filepath.Join(dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", agentSock)
	if err := agent.Start(); err != nil {
		t.Fatalf("ssh-agent: %v", err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	testutil.Eventually(t, 10*time.Second, "the ssh-agent's socket", func() bool { _, err := os.Stat(agentSock); return err == nil })
	add := exec.Command("ssh-add", key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+agentSock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v %s", err, out)
	}
	c.env = append(c.env, "SSH_AUTH_SOCK="+agentSock)
	pub, _ := os.ReadFile(key + ".pub")
	ud := filepath.Join(t.TempDir(), "user-data")
	if err := os.WriteFile(ud, []byte("#cloud-config\nssh_authorized_keys:\n  - "+strings.TrimSpace(string(pub))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.must(0, "", "create", "box", "--template", "tiny", "--memory", "256", "--network", "none")
	c.must(0, "", "create", "web", "--template", "tiny", "--memory", "256", "--userdata", ud)
	c.must(0, "", "wait", "box", "--for", "condition=ready", "--timeout", "4m")
	testutil.Eventually(t, 4*time.Minute, "web's address and host keys", func() bool {
		vm := getVM(t, c, "web")
		return len(vm.Addresses) > 0 && len(vm.SSHHostKeys) > 0
	})

	tm := newTmux(t)
	// Ctrl-C signals the pane's whole process group, this sh too: a
	// login shell would have put vmctl in a group of its own.
	script := "trap : INT; env -i TERM=screen " + strings.Join(c.env, " ") + " " + filepath.Join(binDir, "vmctl") + " tui; echo \"vmctl exited $?\"; sleep 600"
	tm.run("new-session", "-d", "-s", "tui", "-x", "120", "-y", "30", "sh", "-c", script)
	tm.waitFor(regexp.MustCompile(`(?m)^> box +running`), 30*time.Second)
	tm.run("send-keys", "-t", "tui", "e")
	tm.waitFor(regexp.MustCompile(`(?m)^box:/\S*#\s*$`), 30*time.Second)
	tm.run("send-keys", "-t", "tui", "-l", "echo hi-from-$((2+3))e")
	tm.run("send-keys", "-t", "tui", "Enter")
	tm.waitFor(regexp.MustCompile(`(?m)^hi-from-5e\s*$`), 30*time.Second)
	tm.run("send-keys", "-t", "tui", "-l", "cd /tmp")
	tm.run("send-keys", "-t", "tui", "Enter")
	tm.waitFor(regexp.MustCompile(`(?m)^box:/tmp#\s*$`), 30*time.Second) // cd carried over
	tm.run("send-keys", "-t", "tui", "-l", "pwd; ls /no-such-dir")
	tm.run("send-keys", "-t", "tui", "Enter")
	screen := tm.waitFor(regexp.MustCompile(`(?m)^\[exit [12]\]\s*$`), 30*time.Second)
	if !regexp.MustCompile(`(?m)^/tmp\s*$`).MatchString(screen) || !strings.Contains(screen, "No such file") {
		t.Fatalf("cd did not carry over, or stderr is missing:\n%s", screen)
	}
	// Ctrl-C ends a running line, in the guest too, and the shell goes on.
	tm.run("send-keys", "-t", "tui", "-l", "sleep 300")
	tm.run("send-keys", "-t", "tui", "Enter")
	testutil.Eventually(t, 30*time.Second, "sleep running in the guest", func() bool {
		_, _, code := c.run("", "exec", "box", "--", "pidof", "sleep")
		return code == 0
	})
	tm.run("send-keys", "-t", "tui", "C-c")
	tm.waitFor(regexp.MustCompile(`(?s)interrupted; the command is killed in the guest\s*\n\s*box:/tmp#\s*$`), 30*time.Second)
	testutil.Eventually(t, 30*time.Second, "sleep killed in the guest", func() bool {
		_, _, code := c.run("", "exec", "box", "--", "pidof", "sleep")
		return code != 0
	})
	tm.run("send-keys", "-t", "tui", "C-d")
	screen = tm.waitFor(regexp.MustCompile(`shell in box ended`), 20*time.Second)
	if !regexp.MustCompile(`(?m)^> box +running`).MatchString(screen) {
		t.Fatalf("not back on the dashboard:\n%s", screen)
	}

	tm.run("send-keys", "-t", "tui", "j")
	tm.waitFor(regexp.MustCompile(`(?m)^> web +running`), 10*time.Second)
	tm.run("send-keys", "-t", "tui", "e")
	tm.waitFor(regexp.MustCompile(`vmd-tiny:~#\s*$`), time.Minute) // the guest's login shell
	tm.run("send-keys", "-t", "tui", "-l", "echo hi-from-$((2+4))ssh")
	tm.run("send-keys", "-t", "tui", "Enter")
	screen = tm.waitFor(regexp.MustCompile(`(?m)^hi-from-6ssh\s*$`), time.Minute)
	// The guest's login shell prompts (vmctl shell would say web:/#).
	if !strings.Contains(screen, "vmd-tiny:~# echo hi-from-") || strings.Contains(screen, "web:/") {
		t.Fatalf("e on a guest with a network did not use ssh:\n%s", screen)
	}
	tm.run("send-keys", "-t", "tui", "-l", "exit")
	tm.run("send-keys", "-t", "tui", "Enter")
	tm.waitFor(regexp.MustCompile(`shell in web ended`), 20*time.Second)
	tm.run("send-keys", "-t", "tui", "q")
	tm.waitFor(regexp.MustCompile(`vmctl exited 0`), 10*time.Second)
}
