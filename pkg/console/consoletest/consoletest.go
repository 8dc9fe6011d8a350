// Package consoletest runs a real console.Console over a real store behind
// a small HTTP front: GET /api/v1/vms/{id}/console issues a token and the
// WebSocket route proxies to the VM's socket. The front authenticates a
// bearer token that is simply the user's id: the real authentication is
// pkg/server's and is tested there. The console, store, sockets and QEMU
// are all real.
package consoletest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/console"
	"github.com/vmdhq/vmd/pkg/rfb/rfbtest"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/vmtest"
)

// Clock is a settable time source.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock on.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Env is a console over a store, served by an httptest server.
type Env struct {
	Store    store.Store
	Console  *console.Console
	Registry *prometheus.Registry
	Clock    *Clock
	Layout   vm.Layout
	Server   *httptest.Server

	mu      sync.Mutex
	lastErr error
	mux     *http.ServeMux
}

// HandleFunc adds a route to the Env's server (a test's own handler).
func (e *Env) HandleFunc(pattern string, h http.HandlerFunc) { e.mux.HandleFunc(pattern, h) }

// New starts an Env on the SQLite store; tune changes the console's config.
func New(t testing.TB, tune func(*console.Config)) *Env {
	t.Helper()
	e := &Env{
		Store:    storetest.Backends()[0].Open(t),
		Registry: prometheus.NewRegistry(),
		Clock:    &Clock{t: time.Now()},
		Layout:   vmtest.Layout(t),
	}
	mux := http.NewServeMux()
	e.mux = mux
	e.Server = httptest.NewServer(mux)
	t.Cleanup(e.Server.Close)
	cfg := console.Config{PublicURL: e.Server.URL, Store: e.Store, Sockets: console.LayoutSockets{Layout: e.Layout},
		Registry: e.Registry, Now: e.Clock.Now, StatePoll: 200 * time.Millisecond}
	if tune != nil {
		tune(&cfg)
	}
	var err error
	if e.Console, err = console.New(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Console.Close)
	mux.HandleFunc("GET /api/v1/vms/{id}/console", e.issue)
	mux.HandleFunc("GET /api/v1/vms/{id}/console/ws", e.ws)
	return e
}

func (e *Env) user(r *http.Request) (store.User, error) {
	id, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return store.User{}, errors.New("no bearer token")
	}
	return e.Store.GetUser(r.Context(), id)
}

func (e *Env) issue(w http.ResponseWriter, r *http.Request) {
	u, err := e.user(r)
	if err != nil {
		writeErr(w, 401, api.CodeUnauthenticated, err.Error())
		return
	}
	ref := r.PathValue("id")
	var v store.VM
	if strings.HasPrefix(ref, "vm_") {
		v, err = e.Store.GetVM(r.Context(), ref)
	} else {
		v, err = e.Store.GetVMByName(r.Context(), u.ID, ref)
	}
	if err == nil {
		err = vm.Authorize(u, v)
	}
	if err != nil {
		writeErr(w, 404, api.CodeNotFound, "vm "+ref+" not found")
		return
	}
	res, err := e.Console.Issue(r.Context(), u, r.Header.Get("X-Test-Session"), v)
	if err != nil {
		writeErr(w, 409, api.CodeConflict, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}

func (e *Env) ws(w http.ResponseWriter, r *http.Request) {
	authUser := ""
	if u, err := e.user(r); err == nil {
		authUser = u.ID
	}
	err := e.Console.ServeWS(w, r, r.PathValue("id"), authUser)
	if err != nil {
		// Only refusals: a session that ends returns nil, and would race
		// with a later request's refusal.
		e.mu.Lock()
		e.lastErr = err
		e.mu.Unlock()
		writeErr(w, 403, "refused", err.Error())
	}
}

// LastErr is the last refusal a WebSocket request's ServeWS returned.
func (e *Env) LastErr() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastErr
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: msg}})
}

// AddUser stores a verified user; its bearer token here is its id.
func (e *Env) AddUser(t testing.TB, name string) store.User {
	t.Helper()
	u := store.User{ID: "u_" + name, Email: name + "@example.com", PasswordHash: "x", Verified: true,
		Quota: api.Quota{VMs: 10, CPUs: 10, MemoryMB: 8192, DiskGB: 100}}
	if err := e.Store.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

// AddVM stores a running VM of owner. With qemu it boots the tiny image
// with its VNC server on the VM's socket; without, the socket is a plain
// listener that accepts and stays silent.
func (e *Env) AddVM(t testing.TB, owner store.User, name string, qemu bool) store.VM {
	t.Helper()
	if qemu {
		return e.addVM(t, owner, name, func(sock string) { rfbtest.StartQEMU(t, sock) })
	}
	return e.addVM(t, owner, name, func(sock string) { Silent(t, sock) })
}

// AddSyntheticVM stores a running VM whose socket serves Synthetic.
func (e *Env) AddSyntheticVM(t testing.TB, owner store.User, name string) store.VM {
	t.Helper()
	return e.addVM(t, owner, name, func(sock string) {
		if err := os.MkdirAll(sockDir(sock), 0o700); err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go Synthetic(l)
	})
}

func (e *Env) addVM(t testing.TB, owner store.User, name string, serve func(sock string)) store.VM {
	t.Helper()
	ctx := context.Background()
	v := store.VM{ID: "vm_" + ulid.Make().String(), OwnerID: owner.ID, Name: name, Template: "tiny", CPU: 1,
		MemoryMB: 128, DiskGB: 1, State: api.StatePending, Desired: api.DesiredRunning, Node: "test"}
	if err := e.Store.CreateVM(ctx, v); err != nil {
		t.Fatal(err)
	}
	serve(e.Layout.Socket(v.ID, vm.VNCSocket))
	v, err := e.Store.SetState(ctx, v.ID, api.StateRunning, "test")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Silent listens on a unix socket and holds every connection open without
// a word, until the test ends.
func Silent(t testing.TB, sock string) {
	t.Helper()
	if err := os.MkdirAll(sockDir(sock), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
}

func sockDir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return "."
}

// Metric returns the value of a gauge or counter, or a histogram's count,
// with the given label value (any label), or -1 when it is missing.
func (e *Env) Metric(t testing.TB, name, label string) float64 {
	t.Helper()
	mfs, err := e.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				match = match || lp.GetValue() == label
			}
			if !match {
				continue
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

// String names the env, for logs.
func (e *Env) String() string { return fmt.Sprintf("console env at %s", e.Server.URL) }

// Synthetic serves a benchmark protocol on l until it is closed, one
// goroutine a connection: the first byte chooses the mode. 'B' and an
// 8-byte big-endian count: the server sends that many bytes and closes.
// 'E': the server echoes everything back. It stands in for a VNC server
// that pushes screens, so proxies can be compared on the same target.
func Synthetic(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			var mode [1]byte
			if _, err := io.ReadFull(c, mode[:]); err != nil {
				return
			}
			switch mode[0] {
			case 'B':
				var n [8]byte
				if _, err := io.ReadFull(c, n[:]); err != nil {
					return
				}
				left := int64(binary.BigEndian.Uint64(n[:]))
				buf := make([]byte, 256<<10)
				for i := range buf {
					buf[i] = byte(i * 7)
				}
				for left > 0 {
					k := min(left, int64(len(buf)))
					if _, err := c.Write(buf[:k]); err != nil {
						return
					}
					left -= k
				}
				// Wait for the reader to close, so no byte is lost to a reset.
				_, _ = io.Copy(io.Discard, c)
			case 'E':
				_, _ = io.CopyBuffer(c, c, make([]byte, 64<<10))
			}
		}()
	}
}
