package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/internal/testutil/netns"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// sinkMBps is the rate of pushing size bytes into the guest's
// `nc -l -p 9000 >/dev/null` at addr until the guest closes.
func sinkMBps(tb testing.TB, addr string, size int) float64 {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	start := time.Now()
	for sent := 0; sent < size; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			tb.Fatal(err)
		}
	}
	_ = c.(*net.TCPConn).CloseWrite()
	_, _ = io.Copy(io.Discard, c) // the guest's nc exits on EOF and closes
	return float64(size) / (1 << 20) / time.Since(start).Seconds()
}

// roundTrips is the median round trip of one byte on each of conns (each
// to a guest's `nc -l -p P -e cat`), taking one round trip on each in turn
// so that all see the same load, each round starting one path further so
// that no path always follows the same one (a guest still busy with the
// last round trip's tail slows the next one to it).
func roundTrips(tb testing.TB, rounds int, conns ...io.ReadWriter) []time.Duration {
	tb.Helper()
	rtts := make([][]time.Duration, len(conns))
	one := []byte{'x'}
	for i := 0; i <= rounds; i++ {
		for k := range conns {
			j := (i + k) % len(conns) // each path in turn, starting one further each round
			c := conns[j]
			t0 := time.Now()
			if _, err := c.Write(one); err != nil {
				tb.Fatal(err)
			}
			if _, err := io.ReadFull(c, one); err != nil {
				tb.Fatal(err)
			}
			if i > 0 { // the first one also opens the guest's side (nc execs cat)
				rtts[j] = append(rtts[j], time.Since(t0))
			}
		}
	}
	p50 := make([]time.Duration, len(conns))
	for j, d := range rtts {
		sort.Slice(d, func(a, b int) bool { return d[a] < d[b] })
		p50[j] = d[len(d)/2]
	}
	return p50
}

// BenchmarkPortForwardVsHostfwd (make bench, docs/BENCHMARKS.md): the tiny
// guest's ports 9000 (sink) and 9001 (echo) through vmctl port-forward and
// vmd, against a second tiny guest running at the same time under a plain
// QEMU with its own user-network hostfwd (restrict=on), inside a network
// namespace. Both guests run together so that both paths see the same load
// (on a shared machine, measuring one after the other compared two loads);
// the round trips are taken in turn: vmctl, hostfwd, a WebSocket stream
// this process opens itself (port 9002, the same path without vmctl), and a
// second hostfwd connection (to the other guest's 9002), so that each guest
// serves two of the four paths. VMD_BENCH_ROUNDS sets the round trips a path
// (300); VMD_BENCH_SCHED=FILE records `perf sched` during them.
func BenchmarkPortForwardVsHostfwd(b *testing.B) {
	if _, inChild := netns.Run(b); !inChild {
		return
	}
	const size = 50 << 20
	v := startVMD(b, storetest.Backends()[0])
	a := loggedInTB(b, v, "bench@example.com")
	dir := b.TempDir()
	key := filepath.Join(dir, "id")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		b.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")
	ud := filepath.Join(dir, "user-data")
	_ = os.WriteFile(ud, []byte("#cloud-config\nssh_authorized_keys:\n  - "+strings.TrimSpace(string(pub))+"\n"), 0o600)
	a.must(0, "", "create", "bench", "--template", "tiny", "--memory", "256", "--userdata", ud, "--wait", "--timeout", "4m")
	vm := getVMTB(b, a, "bench")
	vmDir := filepath.Join(v.DataDir, "vms", vm.OwnerID, vm.ID)

	// The other guest: its own overlay of the same template, the same seed (read-only).
	hdisk := filepath.Join(dir, "hostfwd.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
		filepath.Join(v.DataDir, "images", "tiny.qcow2"), hdisk).CombinedOutput(); err != nil {
		b.Fatalf("qemu-img create: %v %s", err, out)
	}
	ports := []string{freePort(b), freePort(b), freePort(b), freePort(b)}
	qemu := exec.Command("qemu-system-x86_64", "-nodefaults", "-no-user-config", "-machine", "q35", "-accel", "tcg",
		"-m", "256", "-display", "none",
		"-drive", "if=none,id=d0,file="+hdisk+",format=qcow2", "-device", "virtio-blk-pci,drive=d0",
		"-drive", "if=none,id=s0,file="+filepath.Join(vmDir, "seed.iso")+",format=raw,readonly=on", "-device", "virtio-blk-pci,drive=s0",
		"-netdev", "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:"+ports[0]+"-:9000,hostfwd=tcp:127.0.0.1:"+ports[1]+"-:9001,hostfwd=tcp:127.0.0.1:"+ports[2]+"-:22,hostfwd=tcp:127.0.0.1:"+ports[3]+"-:9002",
		"-device", "virtio-net-pci,netdev=n0", "-serial", "file:"+filepath.Join(dir, "serial.log"))
	if err := qemu.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = qemu.Process.Kill(); _ = qemu.Wait() }()

	testutil.Eventually(b, 4*time.Minute, "dropbear in the guest", func() bool {
		bs, _ := os.ReadFile(filepath.Join(vmDir, "serial.log"))
		return strings.Contains(string(bs), "vmd-tiny: hostkey")
	})
	listeners := "'nc -l -p 9000 >/dev/null </dev/null & nc -l -p 9001 -e cat & nc -l -p 9002 -e cat & sleep 1; echo up'"
	if out, errOut, code := a.run("", "ssh", "bench", "-i", key, "--", "sh", "-c", listeners); code != 0 || !strings.Contains(out, "up") {
		b.Fatalf("start listeners: %d %s %s", code, out, errOut)
	}
	testutil.Eventually(b, 4*time.Minute, "hostfwd guest's ssh", func() bool {
		bs, _ := os.ReadFile(filepath.Join(dir, "serial.log"))
		return strings.Contains(string(bs), "vmd-tiny: hostkey")
	})
	sshArgs := []string{"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-i", key, "-p", ports[2], "root@127.0.0.1",
		"sh", "-c", listeners}
	if o, err := exec.Command("ssh", sshArgs...).CombinedOutput(); err != nil || !strings.Contains(string(o), "up") {
		b.Fatalf("hostfwd listeners: %v %s", err, o)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := a.portForward(b, "bench", "0:9000", "0:9001")
	rounds := 300
	if r, err := strconv.Atoi(os.Getenv("VMD_BENCH_ROUNDS")); err == nil && r > 0 {
		rounds = r
	}
	lr, err := client.New(v.URL, "").Login(ctx, "bench@example.com", strings.TrimSpace(benchPassword))
	if err != nil {
		b.Fatal(err)
	}
	direct, err := client.New(v.URL, lr.Token).DialPortForward(ctx, "bench", 9002)
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Close()
	vc, err := net.Dial("tcp", addrs[9001])
	if err != nil {
		b.Fatal(err)
	}
	defer vc.Close()
	qc, err := net.Dial("tcp", "127.0.0.1:"+ports[1])
	if err != nil {
		b.Fatal(err)
	}
	defer qc.Close()
	// A second hostfwd connection (the other guest's port 9002) so that both guests serve two
	// of the round trips, as vmd's serves vmctl's and the stream's: a busier QEMU waits longer
	// for a core on a loaded machine. Its figure is also the noise between two equal paths.
	qc2, err := net.Dial("tcp", "127.0.0.1:"+ports[3])
	if err != nil {
		b.Fatal(err)
	}
	defer qc2.Close()

	cpu := func() []time.Duration {
		pid, _ := os.ReadFile(filepath.Join(vmDir, "qemu.pid"))
		return []time.Duration{cpuTime(strings.TrimSpace(string(pid))), cpuTime(strconv.Itoa(qemu.Process.Pid)), cpuTime(strconv.Itoa(v.cmd.Process.Pid))}
	}
	// A window with no traffic: what each spends doing nothing (a measurement, not a wait).
	c0, t0 := cpu(), time.Now()
	time.Sleep(5 * time.Second)
	c1 := cpu()
	b.Logf("idle for %v: CPU of vmd's QEMU %v, hostfwd QEMU %v, vmd %v", time.Since(t0).Round(time.Millisecond), c1[0]-c0[0], c1[1]-c0[1], c1[2]-c0[2])
	vmdMBps := sinkMBps(b, addrs[9000], size)
	qMBps := sinkMBps(b, "127.0.0.1:"+ports[0], size)
	if f := os.Getenv("VMD_BENCH_SCHED"); f != "" {
		// The scheduler's view of the round trips (docs/BENCHMARKS.md, "Where the round trip goes").
		vpid, _ := os.ReadFile(filepath.Join(vmDir, "qemu.pid"))
		b.Logf("perf sched record into %s; pids: vmd %d, vmd's QEMU %s, hostfwd QEMU %d, benchmark %d",
			f, v.cmd.Process.Pid, strings.TrimSpace(string(vpid)), qemu.Process.Pid, os.Getpid())
		rec := exec.Command("perf", "sched", "record", "-a", "-o", f, "--", "sleep", "2")
		if err := rec.Start(); err != nil {
			b.Fatalf("perf sched record: %v", err)
		}
		defer func() { _ = rec.Wait() }()
	}
	c0, t0 = cpu(), time.Now()
	rtt := roundTrips(b, rounds, vc, qc, direct, qc2)
	b.Logf("second hostfwd connection: %v (%.2fx the first: the noise between two equal paths)", rtt[3], float64(rtt[3])/float64(rtt[1]))
	c1 = cpu()
	b.Logf("round trips for %v: CPU of vmd's QEMU %v, hostfwd QEMU %v, vmd %v", time.Since(t0).Round(time.Millisecond), c1[0]-c0[0], c1[1]-c0[1], c1[2]-c0[2])
	vmdRTT, qRTT, directRTT := rtt[0], rtt[1], rtt[2]
	b.ReportMetric(vmdMBps, "vmd-MB/s")
	b.ReportMetric(qMBps, "hostfwd-MB/s")
	b.ReportMetric(float64(vmdRTT.Microseconds()), "vmd-rtt-µs")
	b.ReportMetric(float64(qRTT.Microseconds()), "hostfwd-rtt-µs")
	b.ReportMetric(float64(directRTT.Microseconds()), "stream-rtt-µs")
	b.ReportMetric(float64(rtt[3].Microseconds()), "hostfwd2-rtt-µs")
	b.Logf("port-forward 50 MB: vmd %.1f MB/s, hostfwd %.1f MB/s (%.2fx); 1-byte round trip p50: vmd %v, hostfwd %v (%.2fx); "+
		"the WebSocket stream without vmctl %v (%.2fx)",
		vmdMBps, qMBps, vmdMBps/qMBps, vmdRTT, qRTT, float64(vmdRTT)/float64(qRTT), directRTT, float64(directRTT)/float64(qRTT))
}

// cpuTime is a process's user and system time so far (/proc/PID/stat).
func cpuTime(pid string) time.Duration {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(u+st) * 10 * time.Millisecond // USER_HZ 100
}

func freePort(tb testing.TB) string {
	_, p, _ := net.SplitHostPort(freeAddr(tb))
	if _, err := strconv.Atoi(p); err != nil {
		tb.Fatal(err)
	}
	return p
}

const benchPassword = "correct horse battery\n"

func loggedInTB(tb testing.TB, v *vmd, email string) *cli {
	tb.Helper()
	pw := benchPassword
	if out, code := v.admin(tb, pw, "user", "add", email, "--password-stdin"); code != 0 {
		tb.Fatalf("vmd user add: %d %s", code, out)
	}
	c := newCLI(tb, v.URL)
	c.must(0, pw, "login", "--server", v.URL, "--email", email, "--password-stdin")
	return c
}

func getVMTB(tb testing.TB, c *cli, name string) api.VM {
	tb.Helper()
	var vm api.VM
	if err := json.Unmarshal([]byte(c.must(0, "", "get", name, "-o", "json")), &vm); err != nil {
		tb.Fatal(err)
	}
	return vm
}
