package qga_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/vm/qga"
)

// The benchmarks run against the host's qemu-ga (see hostAgent): the
// figures are the client's and the agent's cost without a guest, an upper
// bound for what a guest allows. Besides time they report CPU time per
// operation of the agent (agent-cpu-ms/op) and of this process
// (client-cpu-ms/op), which a loaded machine changes less than MB/s.

// cpuMeter measures the CPU time of the agent and of the test process.
type cpuMeter struct {
	pid          int
	agent, self0 time.Duration
}

func startCPU(a *hostAgent) *cpuMeter {
	return &cpuMeter{pid: a.cmd.Process.Pid, agent: procCPU(a.cmd.Process.Pid), self0: selfCPU()}
}

func (m *cpuMeter) report(b *testing.B) {
	n := float64(b.N)
	b.ReportMetric(float64((procCPU(m.pid)-m.agent).Milliseconds())/n, "agent-cpu-ms/op")
	b.ReportMetric(float64((selfCPU()-m.self0).Milliseconds())/n, "client-cpu-ms/op")
}

// procCPU is a process's user+system time from /proc/PID/stat (fields 14
// and 15, counted after the command name, which may hold spaces).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

func selfCPU() time.Duration {
	var r syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

func BenchmarkExecTrue(b *testing.B) {
	a := startHostAgent(b)
	c := a.client(b, qga.Options{})
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		b.Fatal(err)
	}
	m := startCPU(a)
	for b.Loop() {
		res, err := c.Exec(ctx, qga.ExecRequest{Path: "/bin/true"})
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("exec true: %+v, %v", res, err)
		}
	}
	m.report(b)
}

const benchFile = 32 << 20

func BenchmarkUpload(b *testing.B) {
	a := startHostAgent(b)
	c := a.client(b, qga.Options{})
	data := benchData()
	p := filepath.Join(a.Dir, "up")
	b.SetBytes(benchFile)
	m := startCPU(a)
	for b.Loop() {
		if _, err := c.Upload(context.Background(), p, bytes.NewReader(data), 0, nil); err != nil {
			b.Fatal(err)
		}
	}
	m.report(b)
}

func BenchmarkDownload(b *testing.B) {
	a := startHostAgent(b)
	c := a.client(b, qga.Options{})
	p := filepath.Join(a.Dir, "down")
	if _, err := c.Upload(context.Background(), p, bytes.NewReader(benchData()), 0, nil); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchFile)
	m := startCPU(a)
	for b.Loop() {
		if _, err := c.Download(context.Background(), p, io.Discard, nil); err != nil {
			b.Fatal(err)
		}
	}
	m.report(b)
}

func benchData() []byte {
	data := make([]byte, benchFile)
	_, _ = rand.NewChaCha8([32]byte{3}).Read(data)
	return data
}
