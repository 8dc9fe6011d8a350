package qemu

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/vmtest"
)

// BenchmarkSnapshot measures snapshots of a VM whose overlay holds 1 GB
// written above its base (qemu-io writes it from the host, as a guest's dd
// would): disk-only snapshot and restore of the stopped VM (qemu-img) and
// of the running one (QMP; a running restore is quit, qemu-img and launch
// to running), a memory snapshot and its live restore (MB/s of the guest's
// RAM), and clones to running (of the 1 GB snapshot and of one taken
// before the write) against a plain create.
func BenchmarkSnapshot(b *testing.B) {
	base := tinyImage(b)
	l := vmtest.Layout(b)
	d := newDriver(b, l)
	ctx := context.Background()
	ms := func(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }
	var m map[string]float64
	for b.Loop() {
		m = map[string]float64{}
		v := testVM("snap")
		v.DiskGB, v.MemoryMB = 3, 512
		if err := d.Provision(ctx, v, base); err != nil {
			b.Fatal(err)
		}
		disk := l.VMFile(v.OwnerID, v.ID, vm.DiskFile)
		// A snapshot of the fresh overlay: a clone of it copies next to nothing.
		if err := d.Snapshot(ctx, v, "fresh", false); err != nil {
			b.Fatal(err)
		}
		// Past the tiny image's file system and boot counter, so the guest still boots.
		if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 0xab 512M 1G", disk).CombinedOutput(); err != nil {
			b.Fatalf("qemu-io: %v %s", err, out)
		}
		t := time.Now()
		if err := d.Snapshot(ctx, v, "off", false); err != nil {
			b.Fatal(err)
		}
		m["ms-stopped-snapshot"] = ms(t)
		t = time.Now()
		if err := d.RestoreSnapshot(ctx, v, "off"); err != nil {
			b.Fatal(err)
		}
		m["ms-stopped-restore"] = ms(t)

		if err := d.Launch(ctx, v); err != nil {
			b.Fatal(err)
		}
		waitSerial(b, l.VMFile(v.OwnerID, v.ID, vm.SerialFile), "vmd-tiny: booted", 2*time.Minute)
		t = time.Now()
		if err := d.Snapshot(ctx, v, "live", false); err != nil {
			b.Fatal(err)
		}
		m["ms-running-snapshot"] = ms(t)
		t = time.Now()
		if err := d.Snapshot(ctx, v, "warm", true); err != nil {
			b.Fatal(err)
		}
		secs := time.Since(t).Seconds()
		m["ms-memory-snapshot"] = secs * 1000
		m["MB/s-memory-snapshot"] = float64(v.MemoryMB) / secs
		t = time.Now()
		if err := d.RestoreSnapshot(ctx, v, "warm"); err != nil {
			b.Fatal(err)
		}
		secs = time.Since(t).Seconds()
		m["ms-memory-restore"] = secs * 1000
		m["MB/s-memory-restore"] = float64(v.MemoryMB) / secs
		t = time.Now()
		if err := d.Stop(ctx, v.ID, closedChan); err != nil {
			b.Fatal(err)
		}
		if err := d.RestoreSnapshot(ctx, v, "live"); err != nil {
			b.Fatal(err)
		}
		if err := d.Launch(ctx, v); err != nil {
			b.Fatal(err)
		}
		if st, err := d.Status(ctx, v.ID); err != nil || st != "running" {
			b.Fatalf("status %q %v", st, err)
		}
		m["ms-running-restore-to-running"] = ms(t)

		c := testVM("clone")
		c.DiskGB = 3
		t = time.Now()
		if err := d.ProvisionClone(ctx, c, base, v, "live"); err != nil {
			b.Fatal(err)
		}
		if err := d.Launch(ctx, c); err != nil {
			b.Fatal(err)
		}
		m["ms-clone-to-running"] = ms(t)
		small := testVM("small")
		t = time.Now()
		if err := d.ProvisionClone(ctx, small, base, v, "fresh"); err != nil {
			b.Fatal(err)
		}
		if err := d.Launch(ctx, small); err != nil {
			b.Fatal(err)
		}
		m["ms-small-clone-to-running"] = ms(t)
		p := testVM("plain")
		t = time.Now()
		if err := d.Provision(ctx, p, base); err != nil {
			b.Fatal(err)
		}
		if err := d.Launch(ctx, p); err != nil {
			b.Fatal(err)
		}
		m["ms-create-to-running"] = ms(t)
		out, _ := exec.Command("qemu-img", "snapshot", "-U", "-l", disk).Output()
		b.Logf("snapshots of the 1 GB VM:\n%s", strings.TrimSpace(string(out)))
		for _, s := range []Spec{v, c, small, p} {
			if err := d.Destroy(ctx, s); err != nil {
				b.Fatal(err)
			}
		}
	}
	for k, x := range m {
		b.ReportMetric(x, k)
	}
}
