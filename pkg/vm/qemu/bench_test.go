package qemu

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/vmtest"
)

// BenchmarkCreateToRunning measures, from the start of provisioning, the
// time until QMP says running, until the guest's first serial line and
// until the tiny image says it booted (TCG).
func BenchmarkCreateToRunning(b *testing.B) {
	base := tinyImage(b)
	l := vmtest.Layout(b)
	d := newDriver(b, l)
	ctx := context.Background()
	var running, firstLine, booted time.Duration
	for b.Loop() {
		v := testVM("bench")
		start := time.Now()
		if err := d.Provision(ctx, v, base); err != nil {
			b.Fatal(err)
		}
		if err := d.Launch(ctx, v); err != nil {
			b.Fatal(err)
		}
		if st, err := d.Status(ctx, v.ID); err != nil || st != "running" {
			b.Fatalf("status %q, %v", st, err)
		}
		running += time.Since(start)
		serial := filepath.Join(l.VMDir(v.OwnerID, v.ID), vm.SerialFile)
		// Sampling the serial log is the measurement: 10 ms is its resolution
		// (testutil.Poll's 20 ms would coarsen the figures).
		for seen := false; ; time.Sleep(10 * time.Millisecond) {
			buf, _ := os.ReadFile(serial)
			if !seen && bytes.IndexByte(buf, '\n') >= 0 {
				firstLine += time.Since(start)
				seen = true
			}
			if bytes.Contains(buf, []byte("vmd-tiny: booted")) {
				booted += time.Since(start)
				break
			}
			if time.Since(start) > 2*time.Minute {
				b.Fatalf("no boot line:\n%s", buf)
			}
		}
		if err := d.Destroy(ctx, v); err != nil {
			b.Fatal(err)
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(running.Milliseconds())/n, "ms-to-running")
	b.ReportMetric(float64(firstLine.Milliseconds())/n, "ms-to-first-serial-line")
	b.ReportMetric(float64(booted.Milliseconds())/n, "ms-to-booted")
}
