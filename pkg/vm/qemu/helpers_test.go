package qemu

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/vmtest"
)

// TestMain lets the test binary double as the probe that tries another
// guest's files under a guest's uid (see asUID).
func TestMain(m *testing.M) {
	if os.Getenv(probeEnv) != "" {
		probeMain(os.Args[1:])
		return
	}
	os.Exit(m.Run())
}

const probeEnv = "VMD_QEMU_TEST_PROBE"

// probeMain opens each path (a socket path ending in .sock is dialled) and
// prints "ok" or the error, one line per path.
func probeMain(paths []string) {
	for _, p := range paths {
		if strings.HasPrefix(p, "-test.") {
			continue
		}
		var err error
		if strings.HasSuffix(p, ".sock") {
			var c net.Conn
			if c, err = net.Dial("unix", p); err == nil {
				c.Close()
			}
		} else {
			var f *os.File
			if f, err = os.Open(p); err == nil {
				_, err = f.Read(make([]byte, 1))
				f.Close()
			}
		}
		res := "ok"
		if err != nil {
			res = err.Error()
		}
		fmt.Printf("%s\t%s\n", p, res)
	}
	os.Exit(0)
}

// asUID runs the probe as uid (and gid) on paths and returns each path's
// result: "ok" or the error. The test binary is copied where any uid may
// run it; the go test cache is not.
func asUID(t testing.TB, uid uint32, paths ...string) map[string]string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "vmd-probe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "probe")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, paths...)
	cmd.Dir = "/"
	cmd.Env = []string{probeEnv + "=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe as uid %d: %v", uid, err)
	}
	res := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if p, r, ok := strings.Cut(line, "\t"); ok {
			res[p] = r
		}
	}
	return res
}

// tinyImage is the test template (built by make if missing).
func tinyImage(t testing.TB) string { return vmtest.TinyImage(t) }

func newDriver(t testing.TB, l vm.Layout) *Driver {
	t.Helper()
	d, err := New(Config{Layout: l, Accel: "tcg", StopTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Guests outlive a closed driver by design; a failed test must not leave them.
		d.mu.Lock()
		gs := make([]*guest, 0, len(d.guests))
		for _, g := range d.guests {
			gs = append(gs, g)
		}
		d.mu.Unlock()
		for _, g := range gs {
			_ = d.Stop(context.Background(), g.id, closedChan)
		}
		d.Close()
	})
	return d
}

func testVM(name string) Spec {
	return Spec{ID: vm.NewID(), OwnerID: "u_test", Hostname: name, CPU: 1, MemoryMB: 128, DiskGB: 1}
}

func sha(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return string(h.Sum(nil))
}

// waitSerial waits for line in a VM's serial log.
func waitSerial(t testing.TB, path, line string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	if testutil.WaitFor(limit, func() bool { b, _ := os.ReadFile(path); return bytes.Contains(b, []byte(line)) }) {
		return time.Since(start)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("no %q in %s after %v; log:\n%s", line, path, limit, lastLines(string(b), 15))
	return 0
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// processGone reports whether pid is no longer a live process.
func processGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}

func itoa(i int) string { return strconv.Itoa(i) }
