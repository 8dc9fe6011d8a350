package qga_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/vm/qga"
)

func TestAgentKilledMidCallThenRestarted(t *testing.T) {
	a := startHostAgent(t)
	c := a.client(t, qga.Options{})
	pidf := filepath.Join(a.Dir, "pid")
	errc := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), qga.ExecRequest{Path: "/bin/sh", Args: []string{"-c", "echo $$ >" + pidf + "; exec sleep 60"}})
		errc <- err
	}()
	pid := readPID(t, pidf)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) }) // the agent's orphan
	a.kill()
	select {
	case err := <-errc:
		if !errors.Is(err, qga.ErrNoAgent) {
			t.Fatalf("exec while the agent died: %v, want ErrNoAgent", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("exec did not return after the agent died")
	}
	if err := c.Ping(context.Background()); !errors.Is(err, qga.ErrNoAgent) {
		t.Fatalf("ping with no agent: %v, want ErrNoAgent", err)
	}
	a.start()
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("ping after the agent's restart: %v", err)
	}
	res, err := c.Exec(context.Background(), qga.ExecRequest{Path: "/bin/sh", Args: []string{"-c", "exit 3"}})
	if err != nil || res.ExitCode != 3 {
		t.Fatalf("exec after the restart: %+v, %v", res, err)
	}
}

// An agent that restarts between two calls (a guest reboot) is invisible:
// the kept connection fails on write, before the command left, and the
// call is retried on a fresh one.
func TestAgentRestartedBetweenCalls(t *testing.T) {
	a := startHostAgent(t)
	c := a.client(t, qga.Options{})
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	a.kill()
	a.start()
	res, err := c.Exec(ctx, qga.ExecRequest{Path: "/bin/sh", Args: []string{"-c", "exit 42"}})
	if err != nil || res.ExitCode != 42 {
		t.Fatalf("exec after the restart: %+v, %v", res, err)
	}
}

func TestStuckPeerReturnsAtDeadline(t *testing.T) {
	sock, accepted := stuckPeer(t)
	c := newClient(t, sock, qga.Options{})
	// Three callers: one waits on the handshake, two queue behind it; each
	// returns at its own deadline.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	took := make([]time.Duration, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := time.Duration(200*(i+1)) * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			start := time.Now()
			errs[i] = c.Ping(ctx)
			took[i] = time.Since(start) - d
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, qga.ErrNoAgent) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("caller %d: %v, want ErrNoAgent and the deadline", i, err)
		}
		if took[i] > time.Second {
			t.Errorf("caller %d returned %v after its deadline", i, took[i])
		}
	}
	if n := accepted(); n < 1 {
		t.Errorf("the peer accepted %d connections, want the client to have dialled", n)
	}
}

func TestCloseAbortsCall(t *testing.T) {
	sock, accepted := stuckPeer(t)
	c := newClient(t, sock, qga.Options{})
	errc := make(chan error, 1)
	go func() { errc <- c.Ping(context.Background()) }()
	waitFor(t, "the client to dial", 5*time.Second, func() bool { return accepted() == 1 })
	start := time.Now()
	c.Close()
	if err := <-errc; !errors.Is(err, qga.ErrClosed) {
		t.Errorf("ping during Close: %v, want ErrClosed", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Close took %v with a call stuck on the handshake", took)
	}
	if err := c.Ping(context.Background()); !errors.Is(err, qga.ErrClosed) {
		t.Errorf("ping after Close: %v, want ErrClosed", err)
	}
}

// A command that never answers costs its caller its deadline and the
// connection; the next call dials again and syncs.
func TestHungCommandThenResync(t *testing.T) {
	var hang sync.Once
	f := startFake(t, func(cmd string, _ json.RawMessage) (map[string]any, bool) {
		if cmd == "guest-info" {
			answer := true
			hang.Do(func() { answer = false })
			if !answer {
				return nil, false
			}
			return ok(map[string]any{"version": "9.9"}), false
		}
		return ok(map[string]any{}), false
	})
	c := newClient(t, f.Sock, qga.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Info(ctx); !errors.Is(err, qga.ErrNoAgent) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("info that hangs: %v, want ErrNoAgent and the deadline", err)
	}
	info, err := c.Info(context.Background())
	if err != nil || info.Version != "9.9" {
		t.Fatalf("info after the hang: %+v, %v", info, err)
	}
	if f.Conns() != 2 {
		t.Errorf("%d connections, want a second one after the hang", f.Conns())
	}
}

// Output left from an earlier client (replies, a half line, a stale sync
// reply) is discarded by the handshake; a reply that carries another
// command's id is skipped.
func TestStaleOutputDiscarded(t *testing.T) {
	f := startFakeAgent(t, &fakeAgent{
		onConnect: func(w *bufio.Writer) {
			w.WriteString(`{"return": {"version": "stale"}, "id": 1}` + "\n")
			w.WriteString(`{"return": {"vers`)
			w.WriteString("\xff" + `{"return": 12345}` + "\n")
			w.WriteString(`{"return": {"version": "stale"}, "id": 2}` + "\n")
		},
		stale: map[string][]string{"guest-info": {
			`{"return": {"version": "stale", "supported_commands": [{"name": "x"}]}, "id": 999}`,
			`{"return": 5, "id": 998}`,
		}},
		handle: func(cmd string, _ json.RawMessage) (map[string]any, bool) {
			return ok(map[string]any{"version": "7.2"}), false
		},
	})
	c := newClient(t, f.Sock, qga.Options{})
	info, err := c.Info(context.Background())
	if err != nil || info.Version != "7.2" || len(info.Commands) != 0 {
		t.Fatalf("info: %+v, %v; want version 7.2 and nothing of the stale replies", info, err)
	}
}

// Shutdown and the fsfreeze commands run against the fake agent only: on
// the host's qemu-ga they would power the host off or freeze its
// filesystems.
func TestShutdown(t *testing.T) {
	tests := []struct {
		name   string
		mode   qga.ShutdownMode
		reply  map[string]any
		hangup bool
		unsupp bool
	}{
		{"silence", qga.ShutdownPowerdown, nil, false, false},
		{"hang-up", qga.ShutdownReboot, nil, true, false},
		{"default mode", "", nil, true, false},
		{"refused", qga.ShutdownHalt, qgaError("CommandNotFound", "Command guest-shutdown has been disabled"), false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			modes := make(chan string, 1)
			f := startFake(t, func(cmd string, args json.RawMessage) (map[string]any, bool) {
				if cmd == "guest-shutdown" {
					var a struct{ Mode string }
					_ = json.Unmarshal(args, &a)
					modes <- a.Mode
					return tt.reply, tt.hangup
				}
				return ok(map[string]any{}), false
			})
			c := newClient(t, f.Sock, qga.Options{})
			if err := c.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err := c.Shutdown(context.Background(), tt.mode)
			if tt.unsupp != errors.Is(err, qga.ErrUnsupported) || (!tt.unsupp && err != nil) {
				t.Fatalf("shutdown: %v (unsupported expected: %v)", err, tt.unsupp)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("shutdown took %v", took)
			}
			want := string(tt.mode)
			if want == "" {
				want = "powerdown"
			}
			if mode := <-modes; mode != want {
				t.Errorf("agent got mode %q, want %q", mode, want)
			}
			// Shutdown syncs on a fresh connection first, and leaves none.
			if err := c.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
			if f.Conns() != 3 {
				t.Errorf("%d connections, want 3 (ping, shutdown, ping)", f.Conns())
			}
		})
	}
}

func TestShutdownWithoutAgent(t *testing.T) {
	c := newClient(t, filepath.Join(t.TempDir(), "absent.sock"), qga.Options{})
	if err := c.Shutdown(context.Background(), qga.ShutdownPowerdown); !errors.Is(err, qga.ErrNoAgent) {
		t.Fatalf("shutdown without an agent: %v, want ErrNoAgent (silence is success only once the agent answered)", err)
	}
}

func TestFsFreeze(t *testing.T) {
	var mu sync.Mutex
	state := "thawed"
	f := startFake(t, func(cmd string, _ json.RawMessage) (map[string]any, bool) {
		mu.Lock()
		defer mu.Unlock()
		switch cmd {
		case "guest-fsfreeze-status":
			return ok(state), false
		case "guest-fsfreeze-freeze":
			if state == "frozen" {
				return qgaError("GenericError", "Command guest-fsfreeze-freeze has been disabled: the agent is in frozen state"), false
			}
			state = "frozen"
			return ok(3), false
		case "guest-fsfreeze-thaw":
			state = "thawed"
			return ok(3), false
		}
		return qgaError("CommandNotFound", "The command "+cmd+" has not been found"), false
	})
	c := newClient(t, f.Sock, qga.Options{})
	ctx := context.Background()
	steps := []struct {
		do     func() (any, error)
		want   any
		failed bool
	}{
		{func() (any, error) { return c.FsFreezeStatus(ctx) }, qga.Thawed, false},
		{func() (any, error) { return c.FsFreeze(ctx) }, 3, false},
		{func() (any, error) { return c.FsFreezeStatus(ctx) }, qga.Frozen, false},
		{func() (any, error) { return c.FsFreeze(ctx) }, 0, true},
		{func() (any, error) { return c.FsThaw(ctx) }, 3, false},
		{func() (any, error) { return c.FsFreezeStatus(ctx) }, qga.Thawed, false},
	}
	for i, s := range steps {
		got, err := s.do()
		var qe *qga.Error
		if s.failed != errors.As(err, &qe) || got != s.want {
			t.Errorf("step %d: %v, %v; want %v (an agent error: %v)", i, got, err, s.want, s.failed)
		}
	}
	if _, err := c.Exec(ctx, qga.ExecRequest{Path: "/bin/true"}); !errors.Is(err, qga.ErrUnsupported) {
		t.Errorf("a command the agent lacks: %v, want ErrUnsupported", err)
	}
}

// Callers share the one connection (the socket serves one client at a
// time) and each gets its own reply.
func TestConcurrentCallers(t *testing.T) {
	a := startHostAgent(t)
	c := a.client(t, qga.Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 8*5)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				code := g*10 + i
				res, err := c.Exec(context.Background(), qga.ExecRequest{Path: "/bin/sh", Args: []string{"-c", "exit " + strconv.Itoa(code)}})
				if err != nil || res.ExitCode != code {
					errs <- fmt.Errorf("exit %d: got %+v, %v", code, res, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A reply longer than MaxReply (a flooding guest) fails its call without
// blaming the agent's absence and drops the connection; the next call
// starts afresh.
func TestReplyTooLarge(t *testing.T) {
	f := startFake(t, func(cmd string, _ json.RawMessage) (map[string]any, bool) {
		if cmd == "guest-info" {
			return ok(map[string]any{"version": strings.Repeat("x", 4096)}), false
		}
		return ok(map[string]any{}), false
	})
	c := newClient(t, f.Sock, qga.Options{MaxReply: 1024})
	_, err := c.Info(context.Background())
	if err == nil || errors.Is(err, qga.ErrNoAgent) || !strings.Contains(err.Error(), "longer than 1024 bytes") {
		t.Fatalf("info with a 4 KiB reply: %v, want a reply-too-long error", err)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("ping after: %v", err)
	}
	if f.Conns() != 2 {
		t.Errorf("%d connections, want a fresh one after the long reply", f.Conns())
	}
}
