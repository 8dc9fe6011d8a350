// Command agentbench measures, through a real vmd (TCG) and the vmctl
// binary, what the guest agent gives: the round trip of `vmctl exec NAME
// -- true` (process start, API, guest-exec and its status) and `vmctl cp`
// throughput both ways, on one tiny guest.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/vmdhq/vmd/bench/internal/vmdrun"
	"github.com/vmdhq/vmd/pkg/api"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "agentbench:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("agentbench", flag.ContinueOnError)
	vmdBin := fs.String("vmd", "bin/vmd", "vmd binary")
	vmctl := fs.String("vmctl", "bin/vmctl", "vmctl binary")
	image := fs.String("image", "images/tiny.qcow2", "template image")
	n := fs.Int("n", 30, "exec round trips")
	mb := fs.Int("mb", 100, "MB copied each way (the tiny guest keeps /tmp in RAM)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx := context.Background()
	v, err := vmdrun.Start(ctx, vmdrun.Options{VMD: *vmdBin, Image: *image})
	if err != nil {
		return err
	}
	defer v.Close()
	if _, err := v.Client.CreateVM(ctx, api.CreateVMRequest{Name: "agent", Template: "tiny", CPU: 1, MemoryMB: 512}); err != nil {
		return err
	}
	ctl := func(args ...string) error {
		cmd := exec.CommandContext(ctx, *vmctl, args...)
		cmd.Env = append(os.Environ(), "VMCTL_SERVER="+v.URL, "VMCTL_TOKEN="+v.Token, "VMCTL_CONFIG="+filepath.Join(os.TempDir(), "agentbench-none.yaml"))
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("vmctl %v: %w: %s", args, err, b)
		}
		return nil
	}
	if err := ctl("wait", "agent", "--for", "condition=ready", "--timeout", "4m"); err != nil {
		return err
	}
	// The agent comes up after the ready line.
	deadline := time.Now().Add(2 * time.Minute)
	for ctl("exec", "agent", "--", "true") != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("the guest agent never answered:\n%s", v.LogTail())
		}
		time.Sleep(500 * time.Millisecond)
	}
	var rts []time.Duration
	for range *n {
		start := time.Now()
		if err := ctl("exec", "agent", "--", "true"); err != nil {
			return err
		}
		rts = append(rts, time.Since(start))
	}
	fmt.Fprintf(out, "exec-true   p50=%s p90=%s max=%s (n=%d, vmctl process included, tcg)\n",
		vmdrun.Ms(vmdrun.Percentile(rts, 50)), vmdrun.Ms(vmdrun.Percentile(rts, 90)), vmdrun.Ms(vmdrun.Percentile(rts, 100)), len(rts))

	dir, err := os.MkdirTemp("", "agentbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "src")
	f, err := os.Create(src)
	if err != nil {
		return err
	}
	size := int64(*mb) << 20
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		return err
	}
	f.Close()
	start := time.Now()
	if err := ctl("cp", src, "agent:/tmp/big"); err != nil {
		return err
	}
	in := time.Since(start)
	start = time.Now()
	if err := ctl("cp", "agent:/tmp/big", filepath.Join(dir, "back")); err != nil {
		return err
	}
	outD := time.Since(start)
	if st, err := os.Stat(filepath.Join(dir, "back")); err != nil || st.Size() != size {
		return fmt.Errorf("copied back %v bytes, want %d: %v", st, size, err)
	}
	mbps := func(d time.Duration) float64 { return float64(size) / 1e6 / d.Seconds() }
	fmt.Fprintf(out, "cp-in       %.1f MB/s (%d MiB in %s)\n", mbps(in), *mb, vmdrun.Ms(in))
	fmt.Fprintf(out, "cp-out      %.1f MB/s (%d MiB in %s)\n", mbps(outD), *mb, vmdrun.Ms(outD))
	return nil
}
