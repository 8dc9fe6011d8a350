// Command apibench measures vmd's read API (GET /api/v1/vms and
// GET /api/v1/vms/{name}) on SQLite and on PostgreSQL in one run: a fixed
// number of workers on loopback, each sending its next request as soon as
// the last one is answered, for a fixed time. It prints requests a second
// and latency percentiles per store and endpoint.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmdhq/vmd/bench/internal/vmdrun"
	"github.com/vmdhq/vmd/pkg/api"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "apibench:", err)
		os.Exit(1)
	}
}

type config struct {
	vmd, image, postgres string
	stores               []string
	vms, concurrency     int
	duration, warmup     time.Duration
	wrk                  bool
}

func run(args []string, out io.Writer) error {
	var c config
	var stores string
	fs := flag.NewFlagSet("apibench", flag.ContinueOnError)
	fs.StringVar(&c.vmd, "vmd", "bin/vmd", "vmd binary")
	fs.StringVar(&c.image, "image", "images/tiny.qcow2", "template image")
	fs.StringVar(&c.postgres, "postgres", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
		"PostgreSQL server a temporary database is created on (and dropped after)")
	fs.StringVar(&stores, "stores", "sqlite,postgres", "stores to measure, comma-separated")
	fs.IntVar(&c.vms, "vms", 10, "stopped VMs the user owns (what list returns)")
	fs.IntVar(&c.concurrency, "c", 16, "concurrent workers (connections)")
	fs.DurationVar(&c.duration, "d", 10*time.Second, "time each endpoint is driven")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "untimed load before each measurement")
	fs.BoolVar(&c.wrk, "wrk", false, "also drive each endpoint with wrk (same connections and time), for comparison")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.wrk {
		if _, err := exec.LookPath("wrk"); err != nil {
			return errors.New("-wrk: wrk not found (apt-get install wrk)")
		}
	}
	if c.concurrency < 1 || c.concurrency > 256 || c.duration <= 0 || c.duration > 5*time.Minute {
		return errors.New("-c must be 1..256 and -d at most 5m")
	}
	c.stores = strings.Split(stores, ",")
	fmt.Fprintf(out, "# %d VMs, %d workers, %s an endpoint after %s warm-up, loopback, vmd logging every request (json)\n",
		c.vms, c.concurrency, c.duration, c.warmup)
	for _, st := range c.stores {
		if err := measureStore(context.Background(), c, st, out); err != nil {
			return fmt.Errorf("%s: %w", st, err)
		}
	}
	return nil
}

func measureStore(ctx context.Context, c config, storeName string, out io.Writer) error {
	// Stopped VMs still count against the node's vCPUs; room for all of them.
	o := vmdrun.Options{VMD: c.vmd, Image: c.image, Quota: c.vms,
		Extra: []string{"--node-cpus", strconv.Itoa(max(64, 2*c.vms))}}
	switch storeName {
	case "sqlite":
	case "postgres":
		u, drop, err := vmdrun.TempPostgres(ctx, c.postgres)
		if err != nil {
			return err
		}
		defer func() {
			if err := drop(); err != nil {
				fmt.Fprintln(os.Stderr, "apibench: drop database:", err)
			}
		}()
		o.DatabaseURL = u
	default:
		return fmt.Errorf("unknown store %q: want sqlite or postgres", storeName)
	}
	v, err := vmdrun.Start(ctx, o)
	if err != nil {
		return err
	}
	defer v.Close()
	names, err := makeStoppedVMs(ctx, v, c.vms)
	if err != nil {
		return err
	}
	endpoints := []struct {
		name string
		path func(i int) string
	}{
		{"list", func(int) string { return "/api/v1/vms" }},
		{"get", func(i int) string { return "/api/v1/vms/" + names[i%len(names)] }},
	}
	for _, e := range endpoints {
		if _, err := drive(v.URL, v.Token, e.path, c.concurrency, c.warmup); err != nil {
			return err
		}
		cpu0, err := v.CPUTime()
		if err != nil {
			return err
		}
		r, err := drive(v.URL, v.Token, e.path, c.concurrency, c.duration)
		if err != nil {
			return err
		}
		cpu1, err := v.CPUTime()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%-8s %-4s %7.0f req/s  p50=%s p99=%s max=%s  vmd %.2f CPU-s/10k req  (%d requests, %d errors)\n", storeName, e.name,
			float64(r.n)/r.elapsed.Seconds(), vmdrun.Ms(vmdrun.Percentile(r.lat, 50)),
			vmdrun.Ms(vmdrun.Percentile(r.lat, 99)), vmdrun.Ms(vmdrun.Percentile(r.lat, 100)),
			(cpu1-cpu0).Seconds()*1e4/float64(max(r.n, 1)), r.n, r.errors)
		if r.errors > 0 {
			return fmt.Errorf("%s %s: %d failed requests, first: %v", storeName, e.name, r.errors, r.firstErr)
		}
		if c.wrk {
			line, err := runWrk(v.URL+e.path(0), v.Token, c.concurrency, c.duration)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%-8s %-4s %s\n", storeName, e.name, line)
		}
	}
	return nil
}

// runWrk drives url with wrk (2 threads, the same connections and time;
// get always asks for the same VM) and sums its report up in one line.
func runWrk(url, token string, conns int, d time.Duration) (string, error) {
	cmd := exec.Command("wrk", "-t", "2", "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", int(d.Seconds())),
		"--latency", "-H", "Authorization: Bearer "+token, url)
	b, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("wrk: %w\n%s", err, b)
	}
	var rps, p50, p99, non2xx string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			rps = f[1]
		case len(f) == 2 && f[0] == "50%":
			p50 = f[1]
		case len(f) == 2 && f[0] == "99%":
			p99 = f[1]
		case strings.HasPrefix(l, "  Non-2xx"):
			non2xx = ", " + strings.TrimSpace(l)
		}
	}
	return fmt.Sprintf("wrk %s req/s  p50=%s p99=%s%s", rps, p50, p99, non2xx), nil
}

// makeStoppedVMs creates n VMs one at a time and force-stops each once it
// runs, so the store holds n VM rows while at most one guest is alive.
func makeStoppedVMs(ctx context.Context, v *vmdrun.VMD, n int) ([]string, error) {
	var names []string
	for i := range n {
		name := fmt.Sprintf("api-%02d", i)
		if _, err := v.Client.CreateVM(ctx, api.CreateVMRequest{Name: name, Template: "tiny", CPU: 1, MemoryMB: 128}); err != nil {
			return nil, fmt.Errorf("create %s: %w", name, err)
		}
		if err := v.WaitState(ctx, name, api.StateRunning, 2*time.Minute); err != nil {
			return nil, err
		}
		if _, err := v.Client.StopVM(ctx, name, true); err != nil {
			return nil, fmt.Errorf("stop %s: %w", name, err)
		}
		if err := v.WaitState(ctx, name, api.StateStopped, time.Minute); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	return names, nil
}

type result struct {
	n, errors int
	firstErr  error
	lat       []time.Duration
	elapsed   time.Duration
}

// maxSamples bounds each worker's latency record (and so the memory used).
const maxSamples = 1 << 20

// drive runs workers closed-loop against base+path(i) for d.
func drive(base, token string, path func(int) string, workers int, d time.Duration) (result, error) {
	tr := &http.Transport{MaxIdleConns: workers, MaxIdleConnsPerHost: workers, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var (
		mu  sync.Mutex
		res result
		wg  sync.WaitGroup
	)
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			var errs int
			var firstErr error
			for i := w; ctx.Err() == nil && len(lat) < maxSamples; i += workers {
				t0 := time.Now()
				err := get(ctx, hc, base+path(i), token)
				if ctx.Err() != nil {
					break // the request cut short by the end of the run is not counted
				}
				if err != nil {
					errs++
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			defer mu.Unlock()
			res.lat = append(res.lat, lat...)
			res.n += len(lat)
			res.errors += errs
			if res.firstErr == nil {
				res.firstErr = firstErr
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	if res.n == 0 && res.errors == 0 {
		return res, errors.New("no request completed")
	}
	return res, nil
}

func get(ctx context.Context, hc *http.Client, url, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, res.Status)
	}
	return nil
}
