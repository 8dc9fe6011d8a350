package qemu

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/vmtest"
)

// tinyImage is the test template (built by make if missing).
func tinyImage(t testing.TB) string { return vmtest.TinyImage(t) }

// testLayout makes data and run dirs that QEMU's unprivileged user can
// reach (t.TempDir's are 0700).
func testLayout(t testing.TB) vm.Layout {
	t.Helper()
	mk := func(pattern string) string {
		d, err := os.MkdirTemp("", pattern)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return vm.Layout{DataDir: mk("vmd-data-"), RunDir: mk("vmd-run-")}
}

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

func testVM(name string) store.VM {
	return store.VM{ID: vm.NewID(), OwnerID: "u_test", Name: name, CPU: 1, MemoryMB: 128, DiskGB: 1}
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
	for time.Since(start) < limit {
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, []byte(line)) {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
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
