// Command adoptbench measures how long vmd takes to take its guests back
// after a crash: N tiny guests run (TCG), vmd is killed with SIGKILL and
// started again on the same data dir, and the clock runs from that start
// until the API lists every VM as running and, from vmd's log, until the
// last guest was adopted (QMP connected, same process). A guest that was
// restarted instead of adopted fails the run.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmdhq/vmd/bench/internal/vmdrun"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/vm"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "adoptbench:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("adoptbench", flag.ContinueOnError)
	vmdBin := fs.String("vmd", "bin/vmd", "vmd binary")
	image := fs.String("image", "images/tiny.qcow2", "template image")
	dbURL := fs.String("database-url", "", "postgres://… to run vmd on PostgreSQL; empty: SQLite")
	n := fs.Int("n", 20, "guests running when vmd is killed")
	memory := fs.Int("memory", 128, "memory of each VM in MB")
	rounds := fs.Int("rounds", 3, "kill -9 and restart this many times")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx := context.Background()
	// The node offers 4 vCPUs a core by default; the tiny guests idle, so offer one for each.
	v, err := vmdrun.Start(ctx, vmdrun.Options{VMD: *vmdBin, Image: *image, DatabaseURL: *dbURL, Quota: *n,
		Extra: []string{"--node-cpus", strconv.Itoa(*n)}})
	if err != nil {
		return err
	}
	defer v.Close()
	ids, err := boot(ctx, v, *n, *memory)
	if err != nil {
		return err
	}
	var viaAPI, adopted []time.Duration
	for r := range *rounds {
		before, err := pids(v, ids)
		if err != nil {
			return err
		}
		v.Kill()
		logStart := logSize(v.LogPath)
		start := time.Now()
		if err := v.Restart(ctx); err != nil {
			return err
		}
		if err := allRunning(ctx, v, *n, time.Minute); err != nil {
			return err
		}
		apiTook := time.Since(start)
		last, err := lastAdoption(ctx, v.LogPath, logStart, *n, time.Minute)
		if err != nil {
			return err
		}
		after, err := pids(v, ids)
		if err != nil {
			return err
		}
		for id, p := range before {
			if after[id] != p {
				return fmt.Errorf("round %d: vm %s restarted (pid %d, was %d), not adopted", r, id, after[id], p)
			}
		}
		viaAPI, adopted = append(viaAPI, apiTook), append(adopted, last.Sub(start))
		fmt.Fprintf(out, "round %d: all %d running through the API after %s, last adopted after %s\n",
			r, *n, vmdrun.Ms(apiTook), vmdrun.Ms(last.Sub(start)))
	}
	for _, r := range []struct {
		name string
		ds   []time.Duration
	}{{"adopt->api-running", viaAPI}, {"adopt->last-adopted", adopted}} {
		fmt.Fprintf(out, "%-20s p50=%s max=%s (%d guests, %d rounds, tcg)\n", r.name,
			vmdrun.Ms(vmdrun.Percentile(r.ds, 50)), vmdrun.Ms(vmdrun.Percentile(r.ds, 100)), *n, len(r.ds))
	}
	return nil
}

// boot creates n VMs, four at a time, and waits until each guest says it booted.
func boot(ctx context.Context, v *vmdrun.VMD, n, memory int) ([]string, error) {
	ids := make([]string, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			name := fmt.Sprintf("adopt-%d", i)
			created, err := v.Client.CreateVM(ctx, api.CreateVMRequest{Name: name, Template: "tiny", CPU: 1, MemoryMB: memory})
			if err != nil {
				errs[i] = fmt.Errorf("create %s: %w", name, err)
				return
			}
			ids[i] = created.ID
			if err := v.WaitState(ctx, created.ID, api.StateRunning, 3*time.Minute); err != nil {
				errs[i] = err
				return
			}
			serial := filepath.Join(v.VMDir(created.ID), vm.SerialFile)
			for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
				if b, _ := os.ReadFile(serial); bytes.Contains(b, []byte("vmd-tiny: booted")) {
					return
				}
				if time.Now().After(deadline) {
					errs[i] = fmt.Errorf("vm %s: not booted after 3 min", name)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// pids reads each VM's QEMU pid file.
func pids(v *vmdrun.VMD, ids []string) (map[string]int, error) {
	m := map[string]int{}
	for _, id := range ids {
		b, err := os.ReadFile(filepath.Join(v.VMDir(id), vm.PIDFile))
		if err != nil {
			return nil, err
		}
		p, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, err
		}
		m[id] = p
	}
	return m, nil
}

// allRunning polls GET /vms until n VMs are listed running.
func allRunning(ctx context.Context, v *vmdrun.VMD, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		vms, err := v.Client.ListVMs(ctx, false)
		if err != nil {
			return err
		}
		running := 0
		for _, x := range vms {
			if x.State == api.StateRunning {
				running++
			}
		}
		if running == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d running after %s:\n%s", running, n, limit, v.LogTail())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func logSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// lastAdoption waits until vmd's log, from offset on, holds n "adopted"
// lines and returns the time of the last.
func lastAdoption(ctx context.Context, path string, offset int64, n int, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for {
		f, err := os.Open(path)
		if err != nil {
			return time.Time{}, err
		}
		_, _ = f.Seek(offset, io.SeekStart)
		var last time.Time
		seen := 0
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line struct {
				Time time.Time `json:"time"`
				Msg  string    `json:"msg"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "reconcile: adopted running guest" {
				seen++
				last = line.Time
			}
		}
		f.Close()
		if seen >= n {
			return last, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return time.Time{}, fmt.Errorf("%d of %d adoptions logged after %s", seen, n, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
