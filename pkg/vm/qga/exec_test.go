package qga_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/vm/qga"
)

func TestPingAndInfo(t *testing.T) {
	a := startHostAgent(t)
	c := a.client(t, qga.Options{})
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	if info.Version == "" || !info.Supports("guest-exec") || !info.Supports("guest-file-open") {
		t.Errorf("info = %+v, want a version and guest-exec, guest-file-open enabled", info)
	}
	if info.Supports("guest-shutdown") || info.Supports("no-such-command") {
		t.Errorf("info says guest-shutdown (blocked) or an unknown command is supported")
	}
}

func TestExecExitCodes(t *testing.T) {
	a := startHostAgent(t)
	c := a.client(t, qga.Options{})
	tests := []struct {
		name           string
		req            qga.ExecRequest
		code           int
		stdout, stderr string
	}{
		{"true", qga.ExecRequest{Path: "/bin/true"}, 0, "", ""},
		{"false", qga.ExecRequest{Path: "/bin/false"}, 1, "", ""},
		{"exit 42 with output", qga.ExecRequest{Path: "/bin/sh", Args: []string{"-c", "echo out; echo err >&2; exit 42"}, Capture: true}, 42, "out\n", "err\n"},
		{"PATH lookup", qga.ExecRequest{Path: "true"}, 0, "", ""},
		{"env replaced", qga.ExecRequest{Path: "/bin/sh", Args: []string{"-c", `printf %s "$GREETING"`}, Env: []string{"GREETING=hi there"}, Capture: true}, 0, "hi there", ""},
		{"killed by a signal", qga.ExecRequest{Path: "/bin/sh", Args: []string{"-c", "kill -TERM $$"}}, 128 + 15, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.Exec(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("exec: %v", err)
			}
			if res.ExitCode != tt.code || string(res.Stdout) != tt.stdout || string(res.Stderr) != tt.stderr {
				t.Errorf("exit %d stdout %q stderr %q, want %d %q %q", res.ExitCode, res.Stdout, res.Stderr, tt.code, tt.stdout, tt.stderr)
			}
			if res.StdoutTruncated || res.StderrTruncated || res.PID <= 0 {
				t.Errorf("result %+v: want a pid and nothing truncated", res)
			}
		})
	}
}

func TestExecStdinRoundTrip(t *testing.T) {
	a := startHostAgent(t)
	c := a.client(t, qga.Options{})
	in := make([]byte, 3<<20)
	r := rand.New(rand.NewChaCha8([32]byte{1}))
	for i := range in {
		in[i] = byte(r.Uint32())
	}
	res, err := c.Exec(context.Background(), qga.ExecRequest{Path: "cat", Stdin: in, Capture: true})
	if err != nil {
		t.Fatalf("exec cat: %v", err)
	}
	if res.ExitCode != 0 || !bytes.Equal(res.Stdout, in) {
		t.Fatalf("cat: exit %d, %d bytes back of %d sent (equal: %v)", res.ExitCode, len(res.Stdout), len(in), bytes.Equal(res.Stdout, in))
	}
}

func TestExecHugeOutputCapped(t *testing.T) {
	a := startHostAgent(t)
	c := a.client(t, qga.Options{})
	huge := qga.ExecRequest{Path: "/bin/sh", Args: []string{"-c", "head -c 40000000 /dev/zero; echo small >&2"}, Capture: true}
	tests := []struct {
		name      string
		maxOutput int
		want      int
	}{
		{"agent's cap", 0, qga.DefaultMaxOutput},
		{"our cap", 1 << 20, 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := huge
			req.MaxOutput = tt.maxOutput
			res, err := c.Exec(context.Background(), req)
			if err != nil {
				t.Fatalf("exec: %v", err)
			}
			if len(res.Stdout) != tt.want || !res.StdoutTruncated {
				t.Errorf("stdout %d bytes truncated=%v, want %d and truncated", len(res.Stdout), res.StdoutTruncated, tt.want)
			}
			if string(res.Stderr) != "small\n" || res.StderrTruncated {
				t.Errorf("stderr %q truncated=%v, want it whole", res.Stderr, res.StderrTruncated)
			}
		})
	}
}

func TestExecTimeoutKillsCommandAndChildren(t *testing.T) {
	a := startHostAgent(t)
	c := a.client(t, qga.Options{})
	pidf, childf := filepath.Join(a.Dir, "pid"), filepath.Join(a.Dir, "child")
	// The child keeps the output pipes open: unless it dies too, the agent
	// never reports the command exited.
	script := "echo $$ >" + pidf + "; sleep 600 & echo $! >" + childf + "; wait"
	start := time.Now()
	res, err := c.Exec(context.Background(), qga.ExecRequest{Path: "/bin/sh", Args: []string{"-c", script}, Capture: true, Timeout: time.Second})
	took := time.Since(start)
	if !errors.Is(err, qga.ErrExecTimeout) {
		t.Fatalf("exec: %v, want ErrExecTimeout", err)
	}
	if took > 6*time.Second {
		t.Errorf("exec returned after %v, want about its 1s timeout", took)
	}
	if res == nil || res.Signal != 9 || res.ExitCode != 137 {
		t.Errorf("result %+v, want killed by signal 9", res)
	}
	for _, f := range []string{pidf, childf} {
		pid := readPID(t, f)
		waitFor(t, "pid "+strconv.Itoa(pid)+" to die", 5*time.Second, func() bool { return !alive(pid) })
	}
	// The agent is still fine.
	if err := c.Ping(context.Background()); err != nil {
		t.Errorf("ping after the kill: %v", err)
	}
}

func TestExecContextEndKillsInBackground(t *testing.T) {
	a := startHostAgent(t)
	c := a.client(t, qga.Options{})
	pidf := filepath.Join(a.Dir, "pid")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Exec(ctx, qga.ExecRequest{Path: "/bin/sh", Args: []string{"-c", "echo $$ >" + pidf + "; exec sleep 600"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("exec: %v, want the context's deadline", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("exec returned %v after its context ended", took-500*time.Millisecond)
	}
	pid := readPID(t, pidf)
	waitFor(t, "the command to be killed", 10*time.Second, func() bool { return !alive(pid) })
}

func TestExecMissingBinary(t *testing.T) {
	a := startHostAgent(t)
	c := a.client(t, qga.Options{})
	tests := []struct {
		name    string
		req     qga.ExecRequest
		message string
	}{
		{"agent cannot spawn", qga.ExecRequest{Path: "/no/such/binary"}, "No such file or directory"},
		{"shell exits 127", qga.ExecRequest{Path: "/bin/sh", Args: []string{"-c", "no-such-command-vmd"}, Capture: true}, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.Exec(context.Background(), tt.req)
			if !errors.Is(err, qga.ErrCommandNotFound) {
				t.Fatalf("exec: %v, want ErrCommandNotFound", err)
			}
			if res == nil || res.ExitCode != 127 || !strings.Contains(string(res.Stderr), tt.message) {
				t.Errorf("result %+v, want exit 127 and %q in stderr", res, tt.message)
			}
		})
	}
}

func TestNetworkInterfaces(t *testing.T) {
	a := startHostAgent(t)
	c := a.client(t, qga.Options{})
	ifs, err := c.NetworkInterfaces(context.Background())
	if err != nil {
		t.Fatalf("interfaces: %v", err)
	}
	want := netip.MustParsePrefix("127.0.0.1/8")
	for _, i := range ifs {
		for _, p := range i.Addresses {
			if i.Name == "lo" && p == want {
				return
			}
		}
	}
	t.Fatalf("interfaces %+v: no lo with %v", ifs, want)
}
