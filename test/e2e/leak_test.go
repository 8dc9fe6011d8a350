package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
	"github.com/vmdhq/vmd/pkg/rfb"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// leakSlackFDs is how many more open files vmd may hold after the cycles
// than before: Incus's leak test allows 5 (lazily opened files, pool
// connections).
const leakSlackFDs = 5

// TestNoLeakAfterCycles runs five full create → console → stop → delete
// cycles on a real vmd and checks that its open files and goroutines come
// back to where they were after a warm-up cycle.
func TestNoLeakAfterCycles(t *testing.T) {
	parallel(t, 1)
	v := startVMD(t, storetest.Backends()[0])
	const email, pw = "leak@example.com", "correct horse battery"
	if out, code := v.admin(t, pw+"\n", "user", "add", email, "--password-stdin"); code != 0 {
		t.Fatalf("vmd user add: %d %s", code, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// No keep-alive: an idle connection of this test would count as vmd's
	// open file and goroutine.
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	lr, err := client.New(v.URL, "", client.WithHTTPClient(hc)).Login(ctx, email, pw)
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(v.URL, lr.Token, client.WithHTTPClient(hc), client.WithTimeout(30*time.Second))
	pid := v.cmd.Process.Pid

	// The first cycle opens what vmd opens once and keeps (store
	// connections, the template's files, pools).
	leakCycle(ctx, t, c, "warmup")
	baseFDs := openFDs(t, pid)
	baseG := goroutines(t, v.URL)
	t.Logf("after the warm-up: %d open files, %d goroutines", len(baseFDs), baseG)

	for i := range 5 {
		leakCycle(ctx, t, c, fmt.Sprintf("cycle%d", i))
	}

	var fds map[string]string
	var g int
	settled := testutil.WaitFor(30*time.Second, func() bool {
		fds, g = openFDs(t, pid), goroutines(t, v.URL)
		return len(fds) <= len(baseFDs)+leakSlackFDs && g <= baseG
	})
	t.Logf("after 5 cycles: %d open files (was %d), %d goroutines (was %d)", len(fds), len(baseFDs), g, baseG)
	if !settled {
		t.Errorf("vmd leaks: %d open files (was %d, %d allowed), %d goroutines (was %d)\nnew files:\n%s",
			len(fds), len(baseFDs), len(baseFDs)+leakSlackFDs, g, baseG, fdDiff(baseFDs, fds))
		if g > baseG {
			// Go prints every goroutine's stack on SIGQUIT; the harness logs vmd's output.
			_ = v.cmd.Process.Signal(syscall.SIGQUIT)
			<-v.exited
		}
	}
}

// leakCycle creates a VM, waits for it to run, opens its console and reads
// the RFB greeting and ServerInit, closes it, stops the VM and deletes it.
func leakCycle(ctx context.Context, t *testing.T, c *client.Client, name string) {
	t.Helper()
	if _, err := c.CreateVM(ctx, api.CreateVMRequest{Name: name, Template: "tiny", MemoryMB: 128}); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	waitState(ctx, t, c, name, api.StateRunning)
	conn, err := c.DialConsole(ctx, name)
	if err != nil {
		t.Fatalf("console of %s: %v", name, err)
	}
	hctx, hcancel := context.WithTimeout(ctx, 30*time.Second)
	rc, err := rfb.Handshake(hctx, conn)
	hcancel()
	if err != nil {
		t.Fatalf("rfb handshake with %s: %v", name, err)
	}
	if rc.Version != "RFB 003.008" {
		t.Fatalf("console of %s speaks %q", name, rc.Version)
	}
	_ = rc.Close()
	if _, err := c.StopVM(ctx, name, false); err != nil {
		t.Fatalf("stop %s: %v", name, err)
	}
	waitState(ctx, t, c, name, api.StateStopped)
	if _, err := c.DeleteVM(ctx, name); err != nil {
		t.Fatalf("delete %s: %v", name, err)
	}
	var last error
	if !testutil.WaitFor(time.Minute, func() bool { _, last = c.GetVM(ctx, name); return client.IsNotFound(last) }) {
		t.Fatalf("%s still there a minute after delete: %v", name, last)
	}
}

func waitState(ctx context.Context, t *testing.T, c *client.Client, name string, want api.State) {
	t.Helper()
	var st api.State
	var last error
	if !testutil.WaitFor(2*time.Minute, func() bool {
		vm, err := c.GetVM(ctx, name)
		if last = err; err == nil {
			st = vm.State
		}
		return st == want
	}) {
		t.Fatalf("%s is %s (%v), want %s", name, st, last, want)
	}
}

// openFDs maps each of pid's open file descriptors to what it points at.
func openFDs(t *testing.T, pid int) map[string]string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("vmd's open files: %v", err)
	}
	out := make(map[string]string, len(ents))
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed while we read
		}
		out[e.Name()] = target
	}
	return out
}

// fdDiff lists the descriptors of now that base did not have, or that point
// elsewhere, with a count per target kind.
func fdDiff(base, now map[string]string) string {
	var lines []string
	for fd, target := range now {
		if base[fd] != target {
			lines = append(lines, fmt.Sprintf("  %s -> %s", fd, target))
		}
	}
	sort.Slice(lines, func(i, j int) bool {
		a, _ := strconv.Atoi(strings.Fields(lines[i])[0])
		b, _ := strconv.Atoi(strings.Fields(lines[j])[0])
		return a < b
	})
	return strings.Join(lines, "\n")
}

// goroutines reads vmd's go_goroutines gauge from /metrics.
func goroutines(t *testing.T, base string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("go_goroutines %q: %v", v, err)
			}
			return int(n)
		}
	}
	t.Fatalf("no go_goroutines in /metrics (%v)", sc.Err())
	return 0
}
