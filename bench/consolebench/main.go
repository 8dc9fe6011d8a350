// Command consolebench compares vmd's console proxy with websockify on one
// synthetic VNC-like server (see consoletest.Synthetic), each proxy in its
// own process: downstream throughput, 16-byte echo round trips and the
// proxy process's CPU time per MB (from /proc/<pid>/stat, children
// included, since websockify forks one process a connection).
//
//	go run ./bench/consolebench [-size 256] [-runs 3] [-echoes 5000]
//
// "consolebench proxy SOCK" is the child mode that runs our proxy.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/console"
	"github.com/vmdhq/vmd/pkg/console/consoletest"
	"github.com/vmdhq/vmd/pkg/store"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "proxy" {
		if err := runProxy(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "consolebench proxy:", err)
			os.Exit(1)
		}
		return
	}
	size := flag.Int("size", 256, "MiB pushed downstream a throughput run")
	runs := flag.Int("runs", 3, "throughput runs per proxy (the median is reported)")
	echoes := flag.Int("echoes", 5000, "16-byte round trips per proxy")
	wsfy := flag.String("websockify", "websockify", "websockify executable")
	idle := flag.Int("idle", 0, "instead: open this many idle sessions through our proxy and report its RSS per session")
	flag.Parse()
	if *idle > 0 {
		if err := idleRSS(*idle); err != nil {
			fmt.Fprintln(os.Stderr, "consolebench:", err)
			os.Exit(1)
		}
		return
	}
	if err := bench(int64(*size)<<20, *runs, *echoes, *wsfy); err != nil {
		fmt.Fprintln(os.Stderr, "consolebench:", err)
		os.Exit(1)
	}
}

// fixedSocket points every VM at the benchmark's server.
type fixedSocket string

func (f fixedSocket) VNCSocket(store.VM) string { return string(f) }

// runProxy serves our console proxy on a free port with one running VM,
// prints its base URL, and hands out tokens at GET /token.
func runProxy(sock string) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "consolebench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(ctx, "", filepath.Join(dir, "vmd.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	u := store.User{ID: "u_bench", Email: "bench@example.com", PasswordHash: "x", Verified: true,
		Quota: api.Quota{VMs: 1, CPUs: 1, MemoryMB: 128, DiskGB: 1}}
	v := store.VM{ID: "vm_bench", OwnerID: u.ID, Name: "bench", Template: "none", CPU: 1, MemoryMB: 128, DiskGB: 1,
		State: api.StatePending, Desired: api.DesiredRunning}
	if err := st.CreateUser(ctx, u); err != nil {
		return err
	}
	if err := st.CreateVM(ctx, v); err != nil {
		return err
	}
	if v, err = st.SetState(ctx, v.ID, api.StateRunning, "bench"); err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	base := "http://" + l.Addr().String()
	con, err := console.New(console.Config{PublicURL: base, Store: st, Sockets: fixedSocket(sock),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxPerVM: 1000, MaxPerUser: 1000})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /token", func(w http.ResponseWriter, r *http.Request) {
		res, err := con.Issue(r.Context(), u, "", v)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, res.WSURL)
	})
	mux.HandleFunc("GET /api/v1/vms/{id}/console/ws", func(w http.ResponseWriter, r *http.Request) {
		// As vmd does after checking the client's bearer token (the bench client is that user).
		if err := con.ServeWS(w, r, r.PathValue("id"), u.ID); err != nil {
			http.Error(w, err.Error(), 403)
		}
	})
	fmt.Println(base)
	return http.Serve(l, mux)
}

type proxy struct {
	name string
	cmd  *exec.Cmd
	// url returns a fresh WebSocket URL for one connection.
	url func() (string, error)
}

func bench(size int64, runs, echoes int, wsfy string) error {
	dir, err := os.MkdirTemp("", "consolebench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "vnc.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	defer l.Close()
	go consoletest.Synthetic(l)

	ours, err := startOurs(sock)
	if err != nil {
		return err
	}
	defer stop(ours.cmd)
	theirs, err := startWebsockify(wsfy, sock)
	if err != nil {
		return err
	}
	defer stop(theirs.cmd)

	fmt.Printf("downstream %d MiB x %d runs, %d x 16-byte echo; loopback, %s\n\n", size>>20, runs, echoes, time.Now().Format(time.DateOnly))
	fmt.Printf("%-12s %12s %14s %10s %10s %8s\n", "proxy", "MB/s", "CPU-s per GB", "echo p50", "echo p99", "RSS MB")
	for _, p := range []proxy{ours, theirs} {
		var rates, cpus []float64
		for i := 0; i < runs; i++ {
			rate, cpu, err := throughput(p, size)
			if err != nil {
				return fmt.Errorf("%s throughput: %w", p.name, err)
			}
			rates, cpus = append(rates, rate), append(cpus, cpu)
		}
		p50, p99, err := echo(p, echoes)
		if err != nil {
			return fmt.Errorf("%s echo: %w", p.name, err)
		}
		fmt.Printf("%-12s %12.0f %14.2f %10s %10s %8.1f\n", p.name, median(rates), median(cpus),
			p50.Round(time.Microsecond), p99.Round(time.Microsecond), float64(rss(p.cmd.Process.Pid))/1e6)
	}
	return nil
}

func startOurs(sock string) (proxy, error) {
	self, err := os.Executable()
	if err != nil {
		return proxy{}, err
	}
	cmd := exec.Command(self, "proxy", sock)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return proxy{}, err
	}
	if err := cmd.Start(); err != nil {
		return proxy{}, err
	}
	line := make([]byte, 64)
	n, err := out.Read(line)
	if err != nil {
		return proxy{}, fmt.Errorf("our proxy did not start: %w", err)
	}
	base := strings.TrimSpace(string(line[:n]))
	return proxy{name: "vmd", cmd: cmd, url: func() (string, error) {
		res, err := http.Get(base + "/token")
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return string(b), err
	}}, nil
}

func startWebsockify(exe, sock string) (proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return proxy{}, err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(exe, "--unix-target="+sock, addr)
	if err := cmd.Start(); err != nil {
		return proxy{}, fmt.Errorf("start websockify (apt install websockify python3-numpy): %w", err)
	}
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			stop(cmd)
			return proxy{}, fmt.Errorf("websockify not listening on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return proxy{name: "websockify", cmd: cmd, url: func() (string, error) { return "ws://" + addr + "/", nil }}, nil
}

func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

func dial(p proxy) (net.Conn, error) {
	u, err := p.url()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{Subprotocols: []string{"binary"}})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(-1)
	return websocket.NetConn(context.Background(), ws, websocket.MessageBinary), nil
}

// throughput pulls size bytes through p and returns MB/s and the proxy's
// CPU seconds per GB (10^9 bytes).
func throughput(p proxy, size int64) (float64, float64, error) {
	c, err := dial(p)
	if err != nil {
		return 0, 0, err
	}
	time.Sleep(100 * time.Millisecond) // websockify forks its child after the handshake
	cpu0 := cpuTime(p.cmd.Process.Pid)
	start := time.Now()
	req := make([]byte, 9)
	req[0] = 'B'
	binary.BigEndian.PutUint64(req[1:], uint64(size))
	if _, err := c.Write(req); err != nil {
		return 0, 0, err
	}
	n, err := io.CopyBuffer(io.Discard, io.LimitReader(c, size), make([]byte, 256<<10))
	took := time.Since(start)
	// Read while the connection is open: websockify's per-connection child
	// is still alive and counted as a descendant.
	cpu := cpuTime(p.cmd.Process.Pid) - cpu0
	c.Close()
	if err != nil || n != size {
		return 0, 0, fmt.Errorf("got %d of %d bytes: %v", n, size, err)
	}
	time.Sleep(300 * time.Millisecond) // let the proxy wind the connection down
	return float64(size) / 1e6 / took.Seconds(), cpu / (float64(size) / 1e9), nil
}

func echo(p proxy, n int) (time.Duration, time.Duration, error) {
	c, err := dial(p)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	if _, err := c.Write([]byte{'E'}); err != nil {
		return 0, 0, err
	}
	msg, got := make([]byte, 16), make([]byte, 16)
	d := make([]time.Duration, 0, n)
	for i := 0; i < n+100; i++ {
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			return 0, 0, err
		}
		if _, err := io.ReadFull(c, got); err != nil {
			return 0, 0, err
		}
		if i >= 100 { // warm-up
			d = append(d, time.Since(start))
		}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2], d[len(d)*99/100], nil
}

// cpuTime is the CPU seconds of pid, its reaped children and its live
// descendants, from /proc.
func cpuTime(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	var ticks float64
	for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
		v, _ := strconv.ParseFloat(f[i], 64)
		ticks += v
	}
	total := ticks / 100 // USER_HZ
	kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, k := range strings.Fields(string(kids)) {
		if kp, err := strconv.Atoi(k); err == nil {
			total += cpuTime(kp)
		}
	}
	return total
}

// rss is the resident set of pid and its live descendants, in bytes.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	total := pages * int64(os.Getpagesize())
	kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, k := range strings.Fields(string(kids)) {
		if kp, err := strconv.Atoi(k); err == nil {
			total += rss(kp)
		}
	}
	return total
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
