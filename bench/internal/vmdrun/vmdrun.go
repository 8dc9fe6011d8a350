// Package vmdrun starts the real vmd binary for the benchmark programs:
// a private data dir, the tiny template imported, one user logged in.
package vmdrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// Options say which binary to run on which store.
type Options struct {
	VMD         string // path of the vmd binary
	Image       string // qcow2 imported as template "tiny"
	DatabaseURL string // empty: SQLite in the data dir
	Quota       int    // VMs the user may have; 0 keeps vmd's default
	Extra       []string
}

// VMD is a running vmd serve process with one user.
type VMD struct {
	URL     string
	DataDir string
	Token   string
	UserID  string
	Client  *client.Client
	LogPath string

	tmp  string
	opts Options
	cmd  *exec.Cmd
	done chan struct{}
}

const (
	email    = "bench@example.com"
	password = "bench password 1234"
)

// Start starts vmd on a fresh data dir and logs a user in. Close undoes it.
func Start(ctx context.Context, o Options) (_ *VMD, err error) {
	tmp, err := os.MkdirTemp("", "vmdbench-")
	if err != nil {
		return nil, err
	}
	v := &VMD{tmp: tmp, opts: o, DataDir: filepath.Join(tmp, "data"), LogPath: filepath.Join(tmp, "vmd.log")}
	defer func() {
		if err != nil {
			v.Close()
		}
	}()
	// QEMU runs as an unprivileged user and must pass through to its files.
	if err := os.MkdirAll(v.DataDir, 0o711); err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp, 0o711); err != nil {
		return nil, err
	}
	if out, err := v.admin("", "image", "import", "tiny", o.Image); err != nil {
		return nil, fmt.Errorf("import image: %w: %s", err, out)
	}
	if out, err := v.admin(password+"\n", "user", "add", email, "--password-stdin"); err != nil {
		return nil, fmt.Errorf("add user: %w: %s", err, out)
	}
	if o.Quota > 0 {
		q := strconv.Itoa(o.Quota)
		if out, err := v.admin("", "user", "set-quota", email, "--vms", q, "--cpus", q, "--memory-mb", strconv.Itoa(o.Quota*256)); err != nil {
			return nil, fmt.Errorf("set quota: %w: %s", err, out)
		}
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	v.URL = "http://" + addr
	if err := v.Restart(ctx); err != nil {
		return nil, err
	}
	lr, err := client.New(v.URL, "").Login(ctx, email, password)
	if err != nil {
		return nil, err
	}
	v.Token = lr.Token
	v.Client = client.New(v.URL, v.Token)
	me, err := v.Client.Me(ctx)
	if err != nil {
		return nil, err
	}
	v.UserID = me.ID
	return v, nil
}

// Restart starts vmd serve (again, after Kill) on the same data dir and
// address and returns once it is ready; its log is appended to.
func (v *VMD) Restart(ctx context.Context) error {
	logf, err := os.OpenFile(v.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	addr := strings.TrimPrefix(v.URL, "http://")
	args := append([]string{"serve", "--listen", addr, "--accel", "tcg", "--stop-timeout", "3s"}, v.storeArgs()...)
	v.cmd = exec.Command(v.opts.VMD, append(args, v.opts.Extra...)...)
	v.cmd.Stdout, v.cmd.Stderr = logf, logf
	if err := v.cmd.Start(); err != nil {
		return fmt.Errorf("start vmd: %w", err)
	}
	v.done = make(chan struct{})
	go func() { _ = v.cmd.Wait(); close(v.done) }()
	return v.waitReady(ctx)
}

// Kill ends vmd with SIGKILL, as a crash would; its guests keep running.
func (v *VMD) Kill() {
	_ = v.cmd.Process.Kill()
	<-v.done
}

func (v *VMD) storeArgs() []string {
	a := []string{"--data-dir", v.DataDir, "--run-dir", filepath.Join(v.tmp, "run"), "--log-format", "json"}
	if v.opts.DatabaseURL != "" {
		a = append(a, "--database-url", v.opts.DatabaseURL)
	}
	return a
}

func (v *VMD) admin(stdin string, args ...string) (string, error) {
	cmd := exec.Command(v.opts.VMD, append(args, v.storeArgs()...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (v *VMD) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get(v.URL + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-v.done:
			return fmt.Errorf("vmd exited:\n%s", v.LogTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return fmt.Errorf("vmd not ready after 60s:\n%s", v.LogTail())
}

// VMDir is the directory of a VM of the logged-in user (serial.log lives there).
func (v *VMD) VMDir(id string) string { return filepath.Join(v.DataDir, "vms", v.UserID, id) }

// LogTail is the end of vmd's log, for error messages.
func (v *VMD) LogTail() string {
	b, _ := os.ReadFile(v.LogPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Close stops vmd, kills any guest left under the data dir and removes it.
func (v *VMD) Close() {
	if v.cmd != nil && v.done != nil {
		_ = v.cmd.Process.Signal(os.Interrupt)
		select {
		case <-v.done:
		case <-time.After(15 * time.Second):
			_ = v.cmd.Process.Kill()
			<-v.done
		}
	}
	killGuests(v.DataDir)
	_ = os.RemoveAll(v.tmp)
}

// killGuests kills the QEMUs whose command line names a file under dir:
// guests outlive vmd by design, the benchmark's must not.
func killGuests(dir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("qemu-system")) || !bytes.Contains(b, []byte(dir+"/")) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// TempPostgres creates a database of its own on the server at adminURL
// and returns its URL and a function that drops it.
func TempPostgres(ctx context.Context, adminURL string) (string, func() error, error) {
	return storetest.CreateDatabase(ctx, adminURL, "vmd_bench_")
}

// Percentile is the nearest-rank percentile p (0..100) of ds, which it sorts.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(math.Ceil(p/100*float64(len(ds)))) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// Ms formats d in milliseconds with a precision fitting its size.
func Ms(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	if ms < 10 {
		return strconv.FormatFloat(ms, 'f', 2, 64) + "ms"
	}
	return strconv.FormatFloat(ms, 'f', 0, 64) + "ms"
}

// ErrTimeout is returned by the wait helpers.
var ErrTimeout = errors.New("timed out")

// WaitState polls the VM every few milliseconds until it is in state want;
// a VM in error ends the wait.
func (v *VMD) WaitState(ctx context.Context, name string, want api.State, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		vm, err := v.Client.GetVM(ctx, name)
		if err != nil {
			return err
		}
		if vm.State == want {
			return nil
		}
		if vm.State == api.StateError {
			return fmt.Errorf("vm %s in error waiting for %s:\n%s", name, want, v.LogTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vm %s: %s after %s, want %s: %w", name, vm.State, timeout, want, ErrTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Delete deletes the VM and waits until it is gone.
func (v *VMD) Delete(ctx context.Context, name string) error {
	if _, err := v.Client.DeleteVM(ctx, name); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if _, err := v.Client.GetVM(ctx, name); client.IsNotFound(err) {
			return nil
		} else if err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("delete vm %s: %w", name, ErrTimeout)
}

// CPUTime is the user and system CPU time the vmd process used so far
// (/proc/PID/stat, in the kernel's 100 Hz ticks). CPU a request is a
// steadier figure than requests a second on a machine others share.
func (v *VMD) CPUTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", v.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc stat: %q", b)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parse /proc stat: %w", err)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}
