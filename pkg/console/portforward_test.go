package console_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
	"github.com/vmdhq/vmd/pkg/console"
	"github.com/vmdhq/vmd/pkg/console/consoletest"
	"github.com/vmdhq/vmd/pkg/guestnet"
	"github.com/vmdhq/vmd/pkg/store"
)

// guests is a GuestDialer whose guest listens on loopback ports the test opens.
type guests struct{ ports sync.Map }

func (g *guests) DialGuest(ctx context.Context, _ string, port int) (net.Conn, error) {
	addr, ok := g.ports.Load(port)
	if !ok {
		return nil, fmt.Errorf("dial: %w", guestnet.ErrPortClosed)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr.(string))
}

// sumServer reads to EOF, then answers with the sha256 of what it read and closes.
func sumServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				h := sha256.New()
				_, _ = io.Copy(h, c)
				fmt.Fprintf(c, "%x", h.Sum(nil))
			}()
		}
	}()
	return l.Addr().String()
}

func natVM(t testing.TB, e *consoletest.Env, owner store.User, name, network string) store.VM {
	t.Helper()
	ctx := context.Background()
	v := store.VM{ID: "vm_" + ulid.Make().String(), OwnerID: owner.ID, Name: name, Template: "tiny", CPU: 1,
		MemoryMB: 128, DiskGB: 1, State: api.StateRunning, Desired: api.DesiredRunning, Node: "test", Network: network}
	if err := e.Store.CreateVM(ctx, v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestPortForwardStream: a one-time token opens one stream to the guest
// port; both half-closes pass (the guest reads to EOF, answers, closes);
// the token is then used up; a console token opens no port; a closed port
// and a VM without network are refused before the upgrade.
func TestPortForwardStream(t *testing.T) {
	g := &guests{}
	g.ports.Store(9000, sumServer(t))
	e := consoletest.New(t, func(c *console.Config) { c.Guests = g })
	var mu sync.Mutex
	var last error
	lastErr := func() error { mu.Lock(); defer mu.Unlock(); return last }
	// served tells that a request's handler has stored its error: the
	// stream's handler returns after the client's Close does, and its nil
	// must not land after (over) a later refusal's error.
	served := make(chan struct{}, 16)
	e.HandleFunc("GET /api/v1/vms/{id}/portforward", func(w http.ResponseWriter, r *http.Request) {
		err := e.Console.ServePortForward(w, r, r.PathValue("id"), 9000, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), nil)
		mu.Lock()
		last = err
		mu.Unlock()
		served <- struct{}{}
		if err != nil {
			w.WriteHeader(http.StatusForbidden)
		}
	})
	alice := e.AddUser(t, "alice")
	v := natVM(t, e, alice, "web", api.NetworkNAT)
	ctx := context.Background()
	res, err := e.Console.IssuePortForward(ctx, alice, "", v, 9000)
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(e.Server.URL, alice.ID)
	s, err := c.DialStreamURL(ctx, res.WSURL)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, lastErr())
	}
	data := strings.Repeat("vmd port-forward ", 1<<16)
	if _, err := io.WriteString(s, data); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%x", sha256.Sum256([]byte(data))); string(got) != want {
		t.Fatalf("guest answered %q, want %q", got, want)
	}
	s.Close()
	<-served // the stream's own handler
	if _, err := c.DialStreamURL(ctx, res.WSURL); err == nil || !errors.Is(lastErr(), console.ErrTokenInvalid) {
		t.Fatalf("reused token: %v, %v", err, lastErr())
	}
	cres, err := e.Console.Issue(ctx, alice, "", v)
	if err != nil {
		t.Fatal(err)
	}
	tok := cres.WSURL[strings.Index(cres.WSURL, "token="):]
	if _, err := c.DialStreamURL(ctx, strings.Replace(res.WSURL, res.WSURL[strings.Index(res.WSURL, "token="):], tok, 1)); err == nil || !errors.Is(lastErr(), console.ErrTokenInvalid) {
		t.Fatalf("console token on a port: %v, %v", err, lastErr())
	}
	if _, err := e.Console.IssuePortForward(ctx, alice, "", natVM(t, e, alice, "nonet", api.NetworkNone), 9000); !errors.Is(err, console.ErrNoNetwork) {
		t.Fatalf("network none: %v", err)
	}
	g.ports.Delete(9000)
	res, _ = e.Console.IssuePortForward(ctx, alice, "", v, 9000)
	if _, err := c.DialStreamURL(ctx, res.WSURL); err == nil || !errors.Is(lastErr(), console.ErrPortClosed) {
		t.Fatalf("closed port: %v, %v", err, lastErr())
	}
	if _, err := e.Console.IssuePortForward(ctx, alice, "", v, 0); err == nil {
		t.Fatal("port 0 issued")
	}
}

// streamTo opens a port-forward stream, through a console pinging every
// ping, to a guest whose port 9000 is the listener at addr; it is closed
// when the test ends.
func streamTo(t *testing.T, addr string, ping time.Duration) *client.Stream {
	t.Helper()
	g := &guests{}
	g.ports.Store(9000, addr)
	e := consoletest.New(t, func(c *console.Config) { c.Guests = g; c.PingInterval = ping })
	e.HandleFunc("GET /api/v1/vms/{id}/portforward", func(w http.ResponseWriter, r *http.Request) {
		if err := e.Console.ServePortForward(w, r, r.PathValue("id"), 9000, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), nil); err != nil {
			w.WriteHeader(http.StatusForbidden)
		}
	})
	alice := e.AddUser(t, "alice")
	v := natVM(t, e, alice, "web", api.NetworkNAT)
	ctx := context.Background()
	res, err := e.Console.IssuePortForward(ctx, alice, "", v, 9000)
	if err != nil {
		t.Fatal(err)
	}
	s, err := client.New(e.Server.URL, alice.ID).DialStreamURL(ctx, res.WSURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestPortForwardSlowGuestOutlivesPings: a guest that stops reading for
// many ping intervals while the client uploads (a busy TCG guest) holds the
// client's pong behind its data, both in the client's blocked write and in
// vmd's read; the stream is not closed as a dead peer, and every byte
// arrives.
func TestPortForwardSlowGuestOutlivesPings(t *testing.T) {
	// Not shorter: a loaded machine under -race delays a goroutine by
	// tens of milliseconds, and 250 ms was missed by a live session while
	// QEMU guests and other -race tests shared the two cores.
	const ping = 500 * time.Millisecond
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		// The stall's length is the subject: six pings go unanswered meanwhile.
		time.Sleep(6 * ping)
		h := sha256.New()
		_, _ = io.Copy(h, c)
		fmt.Fprintf(c, "%x", h.Sum(nil))
	}()
	s := streamTo(t, l.Addr().String(), ping)
	// Far more than the socket buffers between here and the guest hold.
	data := strings.Repeat("slow guest ", 3<<20)
	// Both ways at once, as vmctl port-forward copies: the reads answer
	// pings, until the upload's blocked write holds the pong back.
	type answer struct {
		b   []byte
		err error
	}
	answered := make(chan answer, 1)
	go func() { b, err := io.ReadAll(s); answered <- answer{b, err} }()
	// In writes of 32 KiB.
	if _, err := io.Copy(s, struct{ io.Reader }{strings.NewReader(data)}); err != nil {
		t.Fatalf("upload to a slow guest: %v", err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	a := <-answered
	got, err := a.b, a.err
	if err != nil {
		t.Fatalf("answer of a slow guest: %v", err)
	}
	if want := fmt.Sprintf("%x", sha256.Sum256([]byte(data))); string(got) != want {
		t.Fatalf("guest answered %q, want %q", got, want)
	}
}

// TestPortForwardUploadAfterGuestHalfClose: a guest that ends its sending
// side at once (busybox `nc -l` with no input does) and reads late gets
// every byte of an upload, and the server closes the stream normally once
// it has passed everything on, which is what client.Stream.WaitClosed (and
// so vmctl port-forward) waits for before it closes. vmctl used to close
// as soon as both sides had ended: its close handshake gives up after 5 s,
// and a server still passing a backlog to a slow guest then got a reset
// (the next ping it sent hit the closed socket), which discards what it had
// not read yet. TestNetworkSSHPortForward saw that as a wrong sha256 in the
// guest on a loaded CI machine; this test checks the contract the fix
// relies on, not the load (it passes with the old close too). Reading
// beside the upload also answers the server's pings (500 ms here): a client
// reading nothing is only spared by the server's exception for a peer whose
// data keeps arriving, and under load it was not (a reset mid-upload).
func TestPortForwardUploadAfterGuestHalfClose(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	sum := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.(*net.TCPConn).CloseWrite()
		// The stall is the subject: the upload waits in the buffers meanwhile.
		time.Sleep(time.Second)
		h := sha256.New()
		_, _ = io.Copy(h, c)
		sum <- fmt.Sprintf("%x", h.Sum(nil))
	}()
	// Pings keep arriving while the client uploads and waits.
	s := streamTo(t, l.Addr().String(), 500*time.Millisecond)
	ctx := context.Background()
	// Far more than the socket buffers between here and the guest hold.
	data := strings.Repeat("half closed ", 3<<20)
	if got, err := io.ReadAll(s); err != nil || len(got) != 0 {
		t.Fatalf("guest's side: %q, %v; want an empty end", got, err)
	}
	// As vmctl does: wait for the server's close beside the upload.
	closed := make(chan error, 1)
	go func() { closed <- s.WaitClosed(ctx) }()
	if _, err := io.Copy(s, struct{ io.Reader }{strings.NewReader(data)}); err != nil {
		t.Fatalf("upload: %v", err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("wait for the server's close: %v", err)
	}
	s.Close()
	if got, want := <-sum, fmt.Sprintf("%x", sha256.Sum256([]byte(data))); got != want {
		t.Fatalf("guest read sha256 %s, want %s", got, want)
	}
}
