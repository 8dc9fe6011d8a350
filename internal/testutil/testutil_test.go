package testutil

import (
	"flag"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitFor(t *testing.T) {
	var n atomic.Int32
	if !WaitFor(5*time.Second, func() bool { return n.Add(1) >= 3 }) {
		t.Fatal("WaitFor gave up on a condition that turns true on the third check")
	}
	if got := n.Load(); got != 3 {
		t.Fatalf("checked %d times, want 3", got)
	}
	start := time.Now()
	if WaitFor(50*time.Millisecond, func() bool { return false }) {
		t.Fatal("WaitFor reported a condition that never holds")
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 2*time.Second {
		t.Fatalf("WaitFor gave up after %s, want about 50ms", d)
	}
}

func TestHolds(t *testing.T) {
	var n atomic.Int32
	start := time.Now()
	Holds(t, 100*time.Millisecond, "a condition that always holds", func() bool { n.Add(1); return true })
	if d := time.Since(start); d < 100*time.Millisecond || d > 2*time.Second {
		t.Fatalf("Holds returned after %s, want about 100ms", d)
	}
	if n.Load() < 2 {
		t.Fatalf("checked %d times over the window, want several", n.Load())
	}
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_, _ = b.Write([]byte("ab"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if b.Len() != 1600 || strings.Count(b.String(), "ab") != 800 {
		t.Fatalf("buffer holds %d bytes, want 1600", b.Len())
	}
}

func TestReachableDir(t *testing.T) {
	d := ReachableDir(t, "vmd-tu-")
	fi, err := os.Stat(d)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o711 || len(d) > 40 {
		t.Fatalf("%s: mode %v, want 0711 and a short path", d, fi.Mode().Perm())
	}
}

// mainParallel is what TestMain asks MainParallel for: more than go test's
// default (GOMAXPROCS), so the raise shows.
var mainParallel = runtime.GOMAXPROCS(0) + 3

// parallelGiven is -test.parallel as the command line left it, before
// MainParallel: what it must keep when the flag was given.
var parallelGiven string

func TestMain(m *testing.M) {
	flag.Parse()
	parallelGiven = flag.Lookup("test.parallel").Value.String()
	os.Exit(MainParallel(m, mainParallel))
}

func TestMainParallel(t *testing.T) {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	want := strconv.Itoa(mainParallel)
	if set {
		want = parallelGiven // given on the command line: MainParallel leaves it
	}
	if got := flag.Lookup("test.parallel").Value.String(); got != want {
		t.Fatalf("-test.parallel is %s, want %s (given on the command line: %v)", got, want, set)
	}
}

func TestSSHPublicKey(t *testing.T) {
	a, b := SSHPublicKey(t), SSHPublicKey(t)
	if !strings.HasPrefix(a, "ssh-ed25519 ") || strings.Contains(a, "\n") || a == b {
		t.Fatalf("keys %q and %q: want two distinct one-line ssh-ed25519 keys", a, b)
	}
}
