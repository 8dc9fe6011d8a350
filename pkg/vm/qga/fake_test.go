package qga_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"path/filepath"
	"sync"
	"testing"
)

// fakeAgent answers the guest agent protocol on a unix socket. It stands in
// for qemu-ga only where the real one must not be used on the host
// (guest-shutdown would power the host off, guest-fsfreeze-freeze would
// freeze its filesystems) or cannot misbehave on demand (stale output, a
// command that never answers). It does the sync handshake like qemu-ga:
// 0xFF resets its parser, the sync reply is 0xFF and {"return": id}.
type fakeAgent struct {
	Sock string
	ln   net.Listener
	// onConnect may write stale output before the handshake.
	onConnect func(w *bufio.Writer)
	// handle answers a command: the reply object ("return" or "error"; the
	// fake adds the id), or nil for none; hangup closes the connection. A
	// reply {"raw": line} is written as it is, without an id, as old
	// agents do.
	handle func(cmd string, args json.RawMessage) (reply map[string]any, hangup bool)
	// stale holds raw lines written before the reply to a command, as if
	// they were late replies to an earlier client.
	stale map[string][]string

	mu    sync.Mutex
	conns []net.Conn
	got   []string // commands received, sync included
	wg    sync.WaitGroup
}

func startFake(t *testing.T, handle func(string, json.RawMessage) (map[string]any, bool)) *fakeAgent {
	t.Helper()
	return startFakeAgent(t, &fakeAgent{handle: handle})
}

// startFakeAgent listens for f, whose hooks are set.
func startFakeAgent(t *testing.T, f *fakeAgent) *fakeAgent {
	t.Helper()
	f.Sock = filepath.Join(t.TempDir(), "qga.sock")
	ln, err := net.Listen("unix", f.Sock)
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.close)
	return f
}

func (f *fakeAgent) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		f.wg.Add(1)
		go f.serve(c)
	}
}

func (f *fakeAgent) serve(c net.Conn) {
	defer f.wg.Done()
	defer c.Close()
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	if f.onConnect != nil {
		f.onConnect(w)
		w.Flush()
	}
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		if i := bytes.LastIndexByte(line, 0xFF); i >= 0 {
			line = line[i+1:]
		}
		var req struct {
			Execute   string          `json:"execute"`
			Arguments json.RawMessage `json:"arguments"`
			ID        json.RawMessage `json:"id"`
		}
		if json.Unmarshal(line, &req) != nil {
			continue
		}
		f.mu.Lock()
		f.got = append(f.got, req.Execute)
		f.mu.Unlock()
		if req.Execute == "guest-sync-delimited" {
			var a struct {
				ID int64 `json:"id"`
			}
			_ = json.Unmarshal(req.Arguments, &a)
			w.WriteByte(0xFF)
			json.NewEncoder(w).Encode(map[string]int64{"return": a.ID})
			w.Flush()
			continue
		}
		reply, hangup := f.handle(req.Execute, req.Arguments)
		if hangup {
			return
		}
		for _, l := range f.stale[req.Execute] {
			w.WriteString(l + "\n")
		}
		if reply == nil {
			w.Flush()
			continue
		}
		if raw, ok := reply["raw"].(string); ok {
			w.WriteString(raw + "\n")
			w.Flush()
			continue
		}
		if req.ID != nil {
			reply["id"] = req.ID
		}
		json.NewEncoder(w).Encode(reply)
		w.Flush()
	}
}

func (f *fakeAgent) close() {
	f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// Commands lists what the fake received so far.
func (f *fakeAgent) Commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

// Conns is how many connections the fake accepted.
func (f *fakeAgent) Conns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

func ok(v any) map[string]any { return map[string]any{"return": v} }

func qgaError(class, desc string) map[string]any {
	return map[string]any{"error": map[string]string{"class": class, "desc": desc}}
}

// stuckPeer accepts connections and never reads or answers, like an agent
// that hangs or a guest whose agent never started behind QEMU's socket.
func stuckPeer(t *testing.T) (sock string, accepted func() int) {
	t.Helper()
	sock = filepath.Join(t.TempDir(), "qga.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return sock, func() int { mu.Lock(); defer mu.Unlock(); return len(conns) }
}
