// Package e2e runs the real vmd and vmctl binaries the way a user does:
// vmd serve on a real store (SQLite and PostgreSQL), a real SMTP exchange,
// real QEMU guests, and vmctl commands checked by output and exit code.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/mail/mailtest"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm/vmtest"
)

var binDir string

// binDirEnv passes the built binaries to the test binary's own children
// (netns.Run re-runs a test inside a network namespace), so they do not
// build them again.
const binDirEnv = "VMD_E2E_BIN_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(binDirEnv); dir != "" {
		binDir = dir
		os.Exit(testutil.MainParallel(m, goParallel))
	}
	dir, err := os.MkdirTemp("", "vmd-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	cmd := exec.Command("go", "build", "-o", dir+"/", "../../cmd/vmd", "../../cmd/vmctl")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.Exit(1)
	}
	os.Setenv(binDirEnv, dir)
	// The slots (parallel_test.go) decide how many tests run at once.
	code := testutil.MainParallel(m, goParallel)
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot is the checkout the tests run in.
func repoRoot(t testing.TB) string {
	t.Helper()
	abs, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// tinyImage is the test template built by `make image`; the tests fail without it.
func tinyImage(t testing.TB) string { return vmtest.TinyImage(t) }

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// vmd is a running vmd serve process.
type vmd struct {
	t       testing.TB
	URL     string
	DataDir string
	RunDir  string
	DBURL   string
	SMTP    *mailtest.Server
	cmd     *exec.Cmd
	exited  chan struct{}
	log     *testutil.SyncBuffer
	args    []string
}

// startVMD starts vmd on a fresh store of backend b, with the tiny template imported.
func startVMD(t testing.TB, b storetest.Backend, extra ...string) *vmd {
	t.Helper()
	dbURL, sqlitePath := b.New(t)
	dataDir := filepath.Dir(sqlitePath)
	if sqlitePath == "" {
		dataDir = filepath.Join(t.TempDir(), "data")
	}
	// QEMU runs as an unprivileged user and must pass through the parents of its files.
	testutil.OpenParents(t, dataDir)
	runDir, err := os.MkdirTemp("/tmp", "vmdrun-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(runDir) })
	v := &vmd{t: t, DataDir: dataDir, RunDir: runDir, DBURL: dbURL, SMTP: mailtest.Start(t), log: &testutil.SyncBuffer{}}
	addr := freeAddr(t)
	v.URL = "http://" + addr
	v.args = append([]string{"serve", "--listen", addr, "--data-dir", dataDir, "--run-dir", runDir,
		"--smtp-url", v.SMTP.URL(), "--accel", "tcg", "--log-format", "text", "--stop-timeout", "3s"}, extra...)
	if dbURL != "" {
		v.args = append(v.args, "--database-url", dbURL)
	}
	out, code := v.admin(t, "", "image", "import", "tiny", tinyImage(t))
	if code != 0 {
		t.Fatalf("vmd image import: %d %s", code, out)
	}
	// Guests outlive vmd by design; the test's guests must not outlive the test.
	t.Cleanup(func() { killGuests(t, dataDir) })
	v.start()
	t.Cleanup(v.stop)
	return v
}

func (v *vmd) storeArgs() []string {
	a := []string{"--data-dir", v.DataDir, "--run-dir", v.RunDir, "--log-format", "text"}
	if v.DBURL != "" {
		a = append(a, "--database-url", v.DBURL)
	}
	return a
}

// admin runs a vmd admin command on the same store.
func (v *vmd) admin(t testing.TB, stdin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "vmd"), append(args, v.storeArgs()...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), exitCode(t, err)
}

func (v *vmd) start() {
	v.t.Helper()
	v.cmd = exec.Command(filepath.Join(binDir, "vmd"), v.args...)
	v.cmd.Stdout, v.cmd.Stderr = v.log, v.log
	if err := v.cmd.Start(); err != nil {
		v.t.Fatal(err)
	}
	v.exited = make(chan struct{})
	go func() { _ = v.cmd.Wait(); close(v.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get(v.URL + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		select {
		case <-v.exited:
			v.t.Fatalf("vmd exited:\n%s", v.log.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	v.t.Fatalf("vmd did not become ready:\n%s", v.log.String())
}

// stop ends vmd with SIGTERM; guests it started keep running by design.
func (v *vmd) stop() {
	if v.cmd == nil || v.exited == nil {
		return
	}
	_ = v.cmd.Process.Signal(os.Interrupt)
	select {
	case <-v.exited:
	case <-time.After(15 * time.Second):
		_ = v.cmd.Process.Kill()
		<-v.exited
	}
	if t, ok := v.t.(*testing.T); ok && t.Failed() {
		t.Logf("vmd log:\n%s", v.log.String())
	}
}

// kill ends vmd with SIGKILL, as a crash would.
func (v *vmd) kill() {
	_ = v.cmd.Process.Kill()
	<-v.exited
}

func exitCode(t testing.TB, err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("run: %v", err)
	return -1
}

// cli runs vmctl with its own config directory, like one person's terminal.
type cli struct {
	t      testing.TB
	server string
	env    []string
	limit  time.Duration // how long one command may take; 5 minutes when zero
}

func newCLI(t testing.TB, server string) *cli {
	t.Helper()
	home := t.TempDir()
	return &cli{t: t, server: server, env: []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"PATH=" + os.Getenv("PATH"), "NO_COLOR=1"}}
}

// run runs vmctl with stdin and returns stdout, stderr and the exit code.
func (c *cli) run(stdin string, args ...string) (string, string, int) {
	c.t.Helper()
	limit := c.limit
	if limit == 0 {
		limit = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "vmctl"), args...)
	cmd.Env = c.env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), exitCode(c.t, err)
}

// must runs vmctl and fails the test unless it exits with want.
func (c *cli) must(want int, stdin string, args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(stdin, args...)
	if code != want {
		c.t.Fatalf("vmctl %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
	}
	return out
}

// killGuests kills every QEMU whose command line names a file under dir.
func killGuests(t testing.TB, dir string) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("qemu-system")) || !bytes.Contains(b, []byte(dir+"/")) {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// portForward starts `vmctl port-forward NAME SPEC…` as c until the test
// ends and returns the local address of each guest port it forwards, read
// from vmctl's "Forwarding from ADDR -> PORT" lines.
func (c *cli) portForward(t testing.TB, name string, specs ...string) map[int]string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pf := exec.CommandContext(ctx, filepath.Join(binDir, "vmctl"), append([]string{"port-forward", name}, specs...)...)
	pf.Env = c.env
	pf.Stderr = os.Stderr
	out, err := pf.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := pf.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = pf.Wait() })
	sc := bufio.NewScanner(out)
	addrs := map[int]string{}
	for len(addrs) < len(specs) {
		if !sc.Scan() {
			t.Fatalf("vmctl port-forward %s %v ended after %v: %v", name, specs, addrs, sc.Err())
		}
		var local string
		var port int
		if _, err := fmt.Sscanf(sc.Text(), "Forwarding from %s -> %d", &local, &port); err != nil {
			t.Fatalf("vmctl port-forward said %q (%v)", sc.Text(), err)
		}
		addrs[port] = local
	}
	go func() { _, _ = io.Copy(io.Discard, out) }() // keep vmctl's later lines from blocking it
	return addrs
}
