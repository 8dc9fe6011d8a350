// Command createbench measures, through a real vmd (TCG), the time from
// the create request (POST /api/v1/vms) to the VM's state "running", to
// the guest's first serial line and to the tiny image's "booted" line,
// over N VMs created one after another (create, measure, delete).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/vmdhq/vmd/bench/internal/vmdrun"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/vm"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "createbench:", err)
		os.Exit(1)
	}
}

type sample struct{ running, firstLine, booted time.Duration }

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("createbench", flag.ContinueOnError)
	vmdBin := fs.String("vmd", "bin/vmd", "vmd binary")
	image := fs.String("image", "images/tiny.qcow2", "template image")
	dbURL := fs.String("database-url", "", "postgres://… to run vmd on PostgreSQL; empty: SQLite")
	n := fs.Int("n", 5, "VMs to create, one after another")
	memory := fs.Int("memory", 128, "memory of each VM in MB")
	verbose := fs.Bool("v", false, "print each VM's figures")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx := context.Background()
	v, err := vmdrun.Start(ctx, vmdrun.Options{VMD: *vmdBin, Image: *image, DatabaseURL: *dbURL})
	if err != nil {
		return err
	}
	defer v.Close()

	var running, first, booted []time.Duration
	for i := range *n {
		s, err := once(ctx, v, fmt.Sprintf("bench-%d", i), *memory)
		if err != nil {
			return err
		}
		if *verbose {
			fmt.Fprintf(out, "vm %d: running %s, first serial line %s, booted %s\n", i,
				vmdrun.Ms(s.running), vmdrun.Ms(s.firstLine), vmdrun.Ms(s.booted))
		}
		running, first, booted = append(running, s.running), append(first, s.firstLine), append(booted, s.booted)
	}
	for _, r := range []struct {
		name string
		ds   []time.Duration
	}{{"create->running", running}, {"create->first-serial-line", first}, {"create->booted", booted}} {
		fmt.Fprintf(out, "%-26s p50=%s max=%s (n=%d, tcg)\n", r.name,
			vmdrun.Ms(vmdrun.Percentile(r.ds, 50)), vmdrun.Ms(vmdrun.Percentile(r.ds, 100)), len(r.ds))
	}
	return nil
}

// once creates one VM and polls its state and serial log together, so
// both are timed from the same start, then deletes it.
func once(ctx context.Context, v *vmdrun.VMD, name string, memory int) (sample, error) {
	var s sample
	start := time.Now()
	created, err := v.Client.CreateVM(ctx, api.CreateVMRequest{Name: name, Template: "tiny", CPU: 1, MemoryMB: memory})
	if err != nil {
		return s, fmt.Errorf("create %s: %w", name, err)
	}
	serial := filepath.Join(v.VMDir(created.ID), vm.SerialFile)
	for s.running == 0 || s.booted == 0 {
		now := time.Since(start)
		if now > 3*time.Minute {
			buf, _ := os.ReadFile(serial)
			return s, fmt.Errorf("vm %s: not booted after %s (running after %s); serial:\n%s", name, now, s.running, buf)
		}
		if s.running == 0 {
			got, err := v.Client.GetVM(ctx, created.ID)
			if err != nil {
				return s, fmt.Errorf("get %s: %w", name, err)
			}
			switch got.State {
			case api.StateRunning:
				s.running = time.Since(start)
			case api.StateError:
				return s, fmt.Errorf("vm %s in error:\n%s", name, v.LogTail())
			}
		}
		if buf, _ := os.ReadFile(serial); len(buf) > 0 {
			if s.firstLine == 0 && bytes.IndexByte(buf, '\n') >= 0 {
				s.firstLine = time.Since(start)
			}
			if bytes.Contains(buf, []byte("vmd-tiny: booted")) {
				s.booted = time.Since(start)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := v.Delete(ctx, created.ID); err != nil {
		return s, err
	}
	return s, nil
}
