package e2e

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The end-to-end tests run in parallel, but a TCG guest is a CPU hog: on
// the two cores of CI (beside the other packages' tests, which make test
// runs at the same time) more than a few booting at once slow every one of
// them down, and with them every wait. So the top-level tests do not rely
// on go test's -parallel alone: each calls parallel(t, weight) and holds
// that many slots (VMD_E2E_SLOTS) while it runs, the longest ones first.
//
// Subtests stay sequential: they share their test's vmd and guests.

// defaultSlots is VMD_E2E_SLOTS unset: measured on the 2-core CI machine
// (docs/TESTING.md, "How long the tests take").
const defaultSlots = 4

// slotsEnv overrides defaultSlots (1 runs the tests one at a time).
const slotsEnv = "VMD_E2E_SLOTS"

// goParallel is the -test.parallel TestMain sets unless the command line
// did: above the number of tests, so the slots alone decide what runs.
const goParallel = 64

// first names the longest tests, about longest first (as measured:
// docs/TESTING.md; the cluster test, of weight 2, early while slots are
// free): they start first, so that none of them is the tail of the run; the
// others follow in declaration order.
var first = []string{
	"TestGuestAgentCopy", "TestCluster", "TestGuestAgent", "TestNetworkSSHPortForward",
	"TestSnapshotRestoreAndClone", "TestBrowserConsoleHeals", "TestExpiry", "TestTinyImageGuestServices",
	"TestVMLifecycle", "TestSnapshotSurvivesVMDKill", "TestGuestsSurviveVMDCrash", "TestNoLeakAfterCycles",
	"TestPauseResume",
}

// sched hands out the slots: pending tests start in order (first, then
// declaration order), each once its weight fits.
type sched struct {
	mu      sync.Mutex
	cond    *sync.Cond
	free    int
	cap     int
	seq     int
	pending map[*testing.T]job // registered, not yet started
}

type job struct {
	weight int
	rank   int // the order to start in
}

var slots = newSched()

func newSched() *sched {
	n := defaultSlots
	if v := os.Getenv(slotsEnv); v != "" {
		if k, err := strconv.Atoi(v); err == nil && k > 0 {
			n = k
		} else {
			fmt.Fprintf(os.Stderr, "%s=%q: want a positive number; using %d\n", slotsEnv, v, n)
		}
	}
	s := &sched{free: n, cap: n, pending: map[*testing.T]job{}}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// parallel runs t in parallel with the other top-level tests, holding
// weight slots (about the TCG guests, Chromiums and vmds it keeps busy at
// once; at most all of them) from when it starts until it ends.
func parallel(t *testing.T, weight int) {
	t.Helper()
	s := slots
	weight = max(1, min(weight, s.cap))
	s.mu.Lock()
	s.seq++
	rank := len(first) + s.seq
	for i, name := range first {
		if name == t.Name() {
			rank = i
		}
	}
	s.pending[t] = job{weight: weight, rank: rank}
	s.mu.Unlock()
	// Returns once every top-level test has registered (go test releases
	// the parallel tests after the last sequential one has run).
	t.Parallel()
	asked := time.Now()
	s.mu.Lock()
	for !s.mayStart(t) {
		s.cond.Wait()
	}
	delete(s.pending, t)
	s.free -= weight
	s.mu.Unlock()
	s.cond.Broadcast() // the next in order may fit too
	// go test's elapsed time for t includes this wait.
	t.Logf("started after %s waiting for %d of %d slots", time.Since(asked).Round(time.Millisecond), weight, s.cap)
	t.Cleanup(func() {
		s.mu.Lock()
		s.free += weight
		s.mu.Unlock()
		s.cond.Broadcast()
	})
}

// mayStart reports whether t goes now: its weight fits and no pending test
// comes before it. When -parallel is below the number of tests, go test
// itself may hold back a test that comes first (waiting for it would
// deadlock), so then t only needs to fit.
func (s *sched) mayStart(t *testing.T) bool {
	j := s.pending[t]
	if j.weight > s.free {
		return false
	}
	if p, err := strconv.Atoi(flag.Lookup("test.parallel").Value.String()); err != nil || p < s.seq {
		return true
	}
	for o, k := range s.pending {
		if o != t && k.rank < j.rank {
			return false
		}
	}
	return true
}
