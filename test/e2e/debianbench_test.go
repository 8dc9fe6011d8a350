//go:build debianimage

package e2e

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/internal/testutil/netns"
	"github.com/vmdhq/vmd/pkg/vm/vmtest"
)

// BenchmarkDebianCreateToSSH (bench/debian.sh, docs/BENCHMARKS.md): n
// debian-12 VMs one after the other (VMD_BENCH_N, default 3), each timed
// from `vmctl create` to `vmctl wait --for condition=ready` returning (its
// qemu-ga answers) and to the first `vmctl ssh NAME -- true` that succeeds
// (retried every 500 ms after that, as a user would), then deleted before the next; vmd and the
// guests inside a network namespace. Reports the medians.
func BenchmarkDebianCreateToSSH(b *testing.B) {
	img := vmtest.DebianImage(b)
	tinyImage(b)
	if _, inChild := netns.Run(b); !inChild {
		return
	}
	n := 3
	if s := os.Getenv("VMD_BENCH_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			b.Fatalf("VMD_BENCH_N=%q: want a positive number", s)
		}
	}
	_, c, key := debianVMD(b, img)
	var toReady, toSSH []time.Duration
	var loads []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("deb%d", i)
		load := loadAvg()
		start := time.Now()
		c.must(0, "", "create", name, "--template", "debian-12")
		// qemu-ga starts long before sshd: ready first, then ssh, retried
		// at a pace that leaves the guest its CPU.
		waitReady(b, c, name, 15*time.Minute)
		toReady = append(toReady, time.Since(start))
		if !testutil.WaitEvery(15*time.Minute, 500*time.Millisecond, func() bool {
			_, _, code := c.run("", "ssh", name, "-i", key, "--", "true")
			return code == 0
		}) {
			b.Fatalf("vmctl ssh %s -- true: no success within 15 min", name)
		}
		toSSH = append(toSSH, time.Since(start))
		loads = append(loads, load+" → "+loadAvg())
		b.Logf("%s: create to ready %.1f s, to vmctl ssh -- true %.1f s (load %s)", name,
			toReady[i].Seconds(), toSSH[i].Seconds(), loads[i])
		c.must(0, "", "delete", name, "--yes", "--wait", "--timeout", "2m")
	}
	b.ReportMetric(median(toReady).Seconds(), "ready-p50-s")
	b.ReportMetric(median(toSSH).Seconds(), "ssh-p50-s")
	b.Logf("debian-12, TCG, n=%d: create to ready p50 %.1f s %s; to vmctl ssh -- true p50 %.1f s %s",
		n, median(toReady).Seconds(), secs(toReady), median(toSSH).Seconds(), secs(toSSH))
}

// median is the middle of ds (the lower middle for an even count).
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// secs is ds as "[a b c]" seconds, in run order.
func secs(ds []time.Duration) string {
	f := make([]string, len(ds))
	for i, d := range ds {
		f[i] = fmt.Sprintf("%.1f", d.Seconds())
	}
	return "[" + strings.Join(f, " ") + " s]"
}
