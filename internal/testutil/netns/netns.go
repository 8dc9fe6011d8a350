// Package netns runs a test's body inside network namespaces the test creates, so that nothing
// the code under test dials can leave the machine: the child sees only its loopback and a veth
// to a second namespace (the test's "outside" host).
//
//	func TestX(t *testing.T) {
//		env, inChild := netns.Run(t)
//		if !inChild {
//			return // the parent: the child ran the body and reported
//		}
//		... body, running inside env.Inside ...
//	}
//
// Needs root and iproute2; without them the test fails (it never skips).
package netns

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

const envChild = "VMD_NETNS_CHILD"

// Prefix is the private /24 on the veth pair; tests pass it in their egress allow list.
var Prefix = netip.MustParsePrefix("10.231.0.0/24")

// Env describes the namespaces a child runs in.
type Env struct {
	Inside      string     // namespace the child process runs in
	Outside     string     // the test's outside host
	InsideAddr  netip.Addr // Inside's veth address (10.231.0.1)
	OutsideAddr netip.Addr // Outside's veth address (10.231.0.2)
	Marker      string     // file the child creates, so the parent knows the body ran
}

var seq atomic.Int64

// Run, in the parent, creates the two namespaces, re-runs the current test or benchmark in a
// child process of the test binary under `ip netns exec`, fails tb when the child fails or did
// not run the body, and returns false. In the child it returns the Env and true.
func Run(tb testing.TB, extraArgs ...string) (Env, bool) {
	tb.Helper()
	if v := os.Getenv(envChild); v != "" {
		var env Env
		if err := json.Unmarshal([]byte(v), &env); err != nil {
			tb.Fatalf("netns: bad %s: %v", envChild, err)
		}
		if err := os.WriteFile(env.Marker, []byte("ran"), 0o600); err != nil {
			tb.Fatalf("netns: marker: %v", err)
		}
		return env, true
	}
	if os.Geteuid() != 0 {
		tb.Fatal("netns: this test creates network namespaces and needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		tb.Fatal("netns: iproute2 (ip) is required")
	}
	n := seq.Add(1)
	env := Env{
		Inside:      fmt.Sprintf("vmdt%d-%d-in", os.Getpid(), n),
		Outside:     fmt.Sprintf("vmdt%d-%d-out", os.Getpid(), n),
		InsideAddr:  netip.MustParseAddr("10.231.0.1"),
		OutsideAddr: netip.MustParseAddr("10.231.0.2"),
		Marker:      filepath.Join(tb.TempDir(), "child-ran"),
	}
	// Deleting a namespace deletes its end of the veth, and with it the peer.
	tb.Cleanup(func() {
		for _, ns := range []string{env.Inside, env.Outside} {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	vi, vo := fmt.Sprintf("vi%d", n), fmt.Sprintf("vo%d", n)
	bits := Prefix.Bits()
	for _, args := range [][]string{
		{"netns", "add", env.Inside},
		{"netns", "add", env.Outside},
		{"link", "add", vi, "netns", env.Inside, "type", "veth", "peer", "name", vo, "netns", env.Outside},
		{"-n", env.Inside, "addr", "add", fmt.Sprintf("%s/%d", env.InsideAddr, bits), "dev", vi},
		{"-n", env.Outside, "addr", "add", fmt.Sprintf("%s/%d", env.OutsideAddr, bits), "dev", vo},
		{"-n", env.Inside, "link", "set", "lo", "up"},
		{"-n", env.Outside, "link", "set", "lo", "up"},
		{"-n", env.Inside, "link", "set", vi, "up"},
		{"-n", env.Outside, "link", "set", vo, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			tb.Fatalf("netns: ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	js, _ := json.Marshal(env)
	args := []string{"netns", "exec", env.Inside, os.Args[0], "-test.count=1", "-test.v"}
	if strings.HasPrefix(tb.Name(), "Benchmark") {
		args = append(args, "-test.run=^$", "-test.bench=^"+tb.Name()+"$")
	} else {
		args = append(args, "-test.run=^"+strings.ReplaceAll(tb.Name(), "/", "$/^")+"$")
	}
	cmd := exec.Command("ip", append(args, extraArgs...)...)
	cmd.Env = append(os.Environ(), envChild+"="+string(js))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("netns: child %s in %s failed: %v", tb.Name(), env.Inside, err)
	}
	if _, err := os.Stat(env.Marker); err != nil {
		tb.Fatalf("netns: child did not run %s: %v", tb.Name(), err)
	}
	return env, false
}

// Listen opens a listener inside namespace ns (for example the outside host) from a process
// running elsewhere: the socket keeps its namespace after the thread switches back.
func Listen(tb testing.TB, ns, network, addr string) net.Listener {
	tb.Helper()
	var ln net.Listener
	Do(tb, ns, func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	tb.Cleanup(func() { ln.Close() })
	return ln
}

// Do runs fn on a thread switched into namespace ns (sockets fn opens stay there), failing tb
// when the switch or fn fails.
func Do(tb testing.TB, ns string, fn func() error) {
	tb.Helper()
	if err := inNamespace(ns, fn); err != nil {
		tb.Fatalf("netns: in %s: %v", ns, err)
	}
}

func inNamespace(ns string, fn func() error) error {
	target, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		return err
	}
	defer target.Close()
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", ns, err)
	}
	ferr := fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the wrong namespace and must never run other goroutines.
		panic(fmt.Sprintf("netns: cannot return from %s: %v", ns, err))
	}
	runtime.UnlockOSThread()
	return ferr
}
