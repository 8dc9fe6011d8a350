package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// pfFigures measures one forward: the time to push size bytes into the
// guest's `nc -l -p 9000 >/dev/null` until the guest closes, and the median
// round trip of one byte through `nc -l -p 9001 -e cat`.
func pfFigures(tb testing.TB, sink, echo string, size int) (mbps float64, rtt time.Duration) {
	tb.Helper()
	c, err := net.Dial("tcp", sink)
	if err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	start := time.Now()
	for sent := 0; sent < size; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			tb.Fatal(err)
		}
	}
	_ = c.(*net.TCPConn).CloseWrite()
	_, _ = io.Copy(io.Discard, c) // the guest's nc exits on EOF and closes
	took := time.Since(start)
	c.Close()
	mbps = float64(size) / (1 << 20) / took.Seconds()

	e, err := net.Dial("tcp", echo)
	if err != nil {
		tb.Fatal(err)
	}
	defer e.Close()
	r := bufio.NewReader(e)
	var rtts []time.Duration
	for i := 0; i < 101; i++ {
		t0 := time.Now()
		if _, err := e.Write([]byte{'x'}); err != nil {
			tb.Fatal(err)
		}
		if _, err := r.ReadByte(); err != nil {
			tb.Fatal(err)
		}
		if i > 0 { // the first one also opens the guest's side
			rtts = append(rtts, time.Since(t0))
		}
	}
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	return mbps, rtts[len(rtts)/2]
}

// BenchmarkPortForwardVsHostfwd (make bench, docs/BENCHMARKS.md): the same
// tiny guest's ports 9000 (sink) and 9001 (echo), first through vmctl
// port-forward and vmd, then through QEMU's own user-network hostfwd
// (restrict=on) on the same disk, inside a network namespace.
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
	testutil.Eventually(b, 4*time.Minute, "dropbear in the guest", func() bool {
		bs, _ := os.ReadFile(filepath.Join(v.DataDir, "vms", vm.OwnerID, vm.ID, "serial.log"))
		return strings.Contains(string(bs), "vmd-tiny: hostkey")
	})
	listeners := "'nc -l -p 9000 >/dev/null </dev/null & nc -l -p 9001 -e cat & sleep 1; echo up'"
	if out, errOut, code := a.run("", "ssh", "bench", "-i", key, "--", "sh", "-c", listeners); code != 0 || !strings.Contains(out, "up") {
		b.Fatalf("start listeners: %d %s %s", code, out, errOut)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pf := exec.CommandContext(ctx, filepath.Join(binDir, "vmctl"), "port-forward", "bench", "0:9000", "0:9001")
	pf.Env = a.env
	out, _ := pf.StdoutPipe()
	if err := pf.Start(); err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	addrs := map[int]string{}
	for len(addrs) < 2 && sc.Scan() {
		var l string
		var p int
		if _, err := fmt.Sscanf(sc.Text(), "Forwarding from %s -> %d", &l, &p); err == nil {
			addrs[p] = l
		}
	}
	vmdMBps, vmdRTT := pfFigures(b, addrs[9000], addrs[9001], size)
	cancel()
	_ = pf.Wait()

	// The same disk under QEMU's own forward.
	a.must(0, "", "stop", "bench", "--force")
	a.must(0, "", "wait", "bench", "--for", "state=stopped", "--timeout", "2m")
	vmDir := filepath.Join(v.DataDir, "vms", vm.OwnerID, vm.ID)
	ports := []string{freePort(b), freePort(b), freePort(b)}
	qemu := exec.Command("qemu-system-x86_64", "-nodefaults", "-no-user-config", "-machine", "q35", "-accel", "tcg",
		"-m", "256", "-display", "none",
		"-drive", "if=none,id=d0,file="+filepath.Join(vmDir, "disk.qcow2")+",format=qcow2", "-device", "virtio-blk-pci,drive=d0",
		"-drive", "if=none,id=s0,file="+filepath.Join(vmDir, "seed.iso")+",format=raw,readonly=on", "-device", "virtio-blk-pci,drive=s0",
		"-netdev", "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:"+ports[0]+"-:9000,hostfwd=tcp:127.0.0.1:"+ports[1]+"-:9001,hostfwd=tcp:127.0.0.1:"+ports[2]+"-:22",
		"-device", "virtio-net-pci,netdev=n0", "-serial", "file:"+filepath.Join(dir, "serial.log"))
	if err := qemu.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = qemu.Process.Kill(); _ = qemu.Wait() }()
	testutil.Eventually(b, 4*time.Minute, "hostfwd guest's ssh", func() bool {
		bs, _ := os.ReadFile(filepath.Join(dir, "serial.log"))
		return strings.Contains(string(bs), "vmd-tiny: hostkey")
	})
	sshArgs := []string{"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-i", key, "-p", ports[2], "root@127.0.0.1",
		"sh", "-c", listeners}
	if o, err := exec.Command("ssh", sshArgs...).CombinedOutput(); err != nil || !strings.Contains(string(o), "up") {
		b.Fatalf("hostfwd listeners: %v %s", err, o)
	}
	qMBps, qRTT := pfFigures(b, "127.0.0.1:"+ports[0], "127.0.0.1:"+ports[1], size)
	b.ReportMetric(vmdMBps, "vmd-MB/s")
	b.ReportMetric(qMBps, "hostfwd-MB/s")
	b.ReportMetric(float64(vmdRTT.Microseconds()), "vmd-rtt-µs")
	b.ReportMetric(float64(qRTT.Microseconds()), "hostfwd-rtt-µs")
	b.Logf("port-forward 50 MB: vmd %.1f MB/s, hostfwd %.1f MB/s (%.2fx); 1-byte round trip p50: vmd %v, hostfwd %v (%.2fx)",
		vmdMBps, qMBps, vmdMBps/qMBps, vmdRTT, qRTT, float64(vmdRTT)/float64(qRTT))
}

func freePort(tb testing.TB) string {
	_, p, _ := net.SplitHostPort(freeAddr(tb))
	if _, err := strconv.Atoi(p); err != nil {
		tb.Fatal(err)
	}
	return p
}

func loggedInTB(tb testing.TB, v *vmd, email string) *cli {
	tb.Helper()
	const pw = "correct horse battery\n"
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
