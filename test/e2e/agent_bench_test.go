package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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

// benchInt is the integer in the environment variable name, or def.
func benchInt(tb testing.TB, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func pct(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	for i := 1; i < len(s); i++ { // insertion sort: n is small
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)]
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + "ms"
}

// BenchmarkExecVsSSH (make bench, bench/agent.sh, docs/BENCHMARKS.md): on
// one tiny guest with a network (inside a network namespace the benchmark
// creates), N round trips each, interleaved, of `vmctl exec NAME -- true`
// (guest agent) and `vmctl ssh NAME -- true` (the system ssh through vmd's
// port-forward), plus the exec request alone through the Go client (no
// vmctl process), then `vmctl cp` of VMD_BENCH_CP_MB MiB in and out,
// checksummed. VMD_BENCH_N sets N (30), VMD_BENCH_CP_MB the copy's size (20).
func BenchmarkExecVsSSH(b *testing.B) {
	if _, inChild := netns.Run(b); !inChild {
		return
	}
	n := benchInt(b, "VMD_BENCH_N", 30)
	cpMB := benchInt(b, "VMD_BENCH_CP_MB", 20)
	loadBefore := loadAvg()
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
	a.must(0, "", "create", "bench", "--template", "tiny", "--cpu", "1", "--memory", "512", "--userdata", ud, "--wait", "--timeout", "4m")
	vm := getVMTB(b, a, "bench")
	testutil.Eventually(b, 4*time.Minute, "dropbear in the guest", func() bool {
		bs, _ := os.ReadFile(filepath.Join(v.DataDir, "vms", vm.OwnerID, vm.ID, "serial.log"))
		return strings.Contains(string(bs), "vmd-tiny: hostkey")
	})
	testutil.Eventually(b, 2*time.Minute, "the guest agent", func() bool {
		_, _, code := a.run("", "exec", "bench", "--", "true")
		return code == 0
	})
	testutil.Eventually(b, 2*time.Minute, "ssh into the guest", func() bool {
		_, _, code := a.run("", "ssh", "bench", "-i", key, "--", "true")
		return code == 0
	})
	anon := client.New(v.URL, "")
	ctx := context.Background()
	lr, err := anon.Login(ctx, "bench@example.com", "correct horse battery")
	if err != nil {
		b.Fatal(err)
	}
	api1 := client.New(v.URL, lr.Token)

	timed := func(args ...string) time.Duration {
		start := time.Now()
		if out, errOut, code := a.run("", args...); code != 0 {
			b.Fatalf("vmctl %s: exit %d: %s %s", strings.Join(args, " "), code, out, errOut)
		}
		return time.Since(start)
	}
	var execs, sshs, apis []time.Duration
	for range n {
		execs = append(execs, timed("exec", "bench", "--", "true"))
		sshs = append(sshs, timed("ssh", "bench", "-i", key, "--", "true"))
		start := time.Now()
		res, err := api1.Exec(ctx, "bench", api.ExecRequest{Command: []string{"true"}})
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("exec through the client: %v %+v", err, res)
		}
		apis = append(apis, time.Since(start))
	}
	ratio := float64(pct(execs, 50)) / float64(pct(sshs, 50))
	b.ReportMetric(float64(pct(execs, 50).Microseconds())/1000, "exec-p50-ms")
	b.ReportMetric(float64(pct(sshs, 50).Microseconds())/1000, "ssh-p50-ms")
	b.ReportMetric(ratio, "exec/ssh")
	b.Logf("exec-true   p50=%s p90=%s max=%s (n=%d, vmctl exec NAME -- true, tcg)", ms(pct(execs, 50)), ms(pct(execs, 90)), ms(pct(execs, 100)), n)
	b.Logf("api-exec    p50=%s p90=%s max=%s (n=%d, POST /vms/{id}/exec through the Go client, no vmctl process)", ms(pct(apis, 50)), ms(pct(apis, 90)), ms(pct(apis, 100)), n)
	b.Logf("ssh-true    p50=%s p90=%s max=%s (n=%d, vmctl ssh NAME -- true through vmd's port-forward)", ms(pct(sshs, 50)), ms(pct(sshs, 90)), ms(pct(sshs, 100)), n)
	goal := "meets"
	if ratio > 0.2 {
		goal = "MISSES"
	}
	b.Logf("exec/ssh    %.3fx at p50 (%s the goal of <= 0.2x)", ratio, goal)

	src := filepath.Join(dir, "src")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	size := int64(cpMB) << 20
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		b.Fatal(err)
	}
	f.Close()
	sum := h.Sum(nil)
	// A copy may take minutes on a loaded machine: longer than a.run allows.
	cp := func(from, to string) time.Duration {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(binDir, "vmctl"), "cp", from, to)
		cmd.Env = a.env
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("vmctl cp %s %s: %v: %s", from, to, err, out)
		}
		return time.Since(start)
	}
	in := cp(src, "bench:/tmp/big")
	back := filepath.Join(dir, "back")
	out := cp("bench:/tmp/big", back)
	bs, err := os.ReadFile(back)
	if err != nil {
		b.Fatal(err)
	}
	if got := sha256.Sum256(bs); string(got[:]) != string(sum) {
		b.Fatalf("copied back %d bytes with another sha256 than the %d sent", len(bs), size)
	}
	mbps := func(d time.Duration) float64 { return float64(size) / 1e6 / d.Seconds() }
	b.ReportMetric(mbps(in), "cp-in-MB/s")
	b.ReportMetric(mbps(out), "cp-out-MB/s")
	b.Logf("cp-in       %.2f MB/s (%d MiB in %s, sha256 equal)", mbps(in), cpMB, ms(in))
	b.Logf("cp-out      %.2f MB/s (%d MiB in %s)", mbps(out), cpMB, ms(out))
	b.Logf("load        %s before, %s after (/proc/loadavg, %s)", loadBefore, loadAvg(), time.Now().UTC().Format(time.RFC3339))
}
