// Package testutil holds the helpers every test package shares: waiting for
// a condition (never sleeping as a way to synchronise), a buffer that a
// process or goroutine writes while the test reads it, and temp directories
// that QEMU's unprivileged user can reach. It imports nothing of ours, so
// any package's internal tests can use it.
package testutil

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Poll is how often Eventually re-checks its condition.
const Poll = 20 * time.Millisecond

// Eventually checks cond every Poll until it holds, and fails the test
// naming what it waited for once timeout has passed.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !WaitFor(timeout, cond) {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// WaitFor checks cond every Poll until it holds (true) or timeout passes
// (false), for callers that report the failure themselves.
func WaitFor(timeout time.Duration, cond func() bool) bool {
	return WaitEvery(timeout, Poll, cond)
}

// Holds fails the test if cond stops holding at any check, every Poll,
// over the next d: for assertions that something does not happen (a
// frozen guest writes nothing), where the window itself is the subject.
func Holds(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.NewTimer(d)
	defer end.Stop()
	tick := time.NewTicker(Poll)
	defer tick.Stop()
	for {
		if !cond() {
			t.Fatalf("%s: stopped holding within %s", what, d)
		}
		select {
		case <-end.C:
			return
		case <-tick.C:
		}
	}
}

// WaitEvery is WaitFor checking every interval: for conditions whose
// every check is costly (a process started, CPU a TCG guest would
// otherwise have).
func WaitEvery(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-deadline.C:
			return cond()
		case <-tick.C:
		}
	}
}

// SyncBuffer is a bytes.Buffer that is safe for concurrent writes (a
// process's stdout and stderr, a logger) and the test's reads.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Len is the number of bytes written so far.
func (s *SyncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

// ReachableDir makes a directory in /tmp, removed when the test ends, that
// others may pass through (0711): QEMU runs as an unprivileged user and
// t.TempDir's directories are 0700. Its path is short, so the unix sockets
// below it stay within sun_path's 107 bytes.
func ReachableDir(t testing.TB, pattern string) string {
	t.Helper()
	d, err := os.MkdirTemp("/tmp", pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o711); err != nil {
		t.Fatal(err)
	}
	return d
}

// OpenParents makes dir (0711) and gives others search permission on its
// parents below the temp dir, so QEMU's user can reach files in it.
func OpenParents(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Clean(os.TempDir())
	for d := dir; strings.HasPrefix(d, tmp+"/"); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
}

// StoreParallel is the -test.parallel MainParallel gives the packages whose
// tests wait on PostgreSQL (creating and dropping a database each, fsyncs
// and checkpoints) rather than on the CPU: at go test's default, GOMAXPROCS,
// two cores keep one or two such tests going and the package takes minutes.
const StoreParallel = 8

// MainParallel is a TestMain body: it runs m with -test.parallel at least n
// unless the command line set -parallel itself, and returns the exit code.
func MainParallel(m *testing.M, n int) int {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if p := flag.Lookup("test.parallel"); p != nil && !set {
		if cur, err := strconv.Atoi(p.Value.String()); err == nil && cur < n {
			_ = p.Value.Set(strconv.Itoa(n))
		}
	}
	return m.Run()
}
