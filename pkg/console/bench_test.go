package console_test

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
	"github.com/vmdhq/vmd/pkg/console"
	"github.com/vmdhq/vmd/pkg/console/consoletest"
)

// benchConn opens a proxied connection to a synthetic server (see
// consoletest.Synthetic). The proxy runs in this process; bench/console.sh
// runs it in its own process beside websockify.
func benchConn(b *testing.B) net.Conn {
	b.Helper()
	e := consoletest.New(b, func(c *console.Config) { c.Log = slog.New(slog.DiscardHandler) })
	alice := e.AddUser(b, "alice")
	v := e.AddSyntheticVM(b, alice, "web")
	res, err := e.Console.Issue(context.Background(), alice, "", v)
	if err != nil {
		b.Fatal(err)
	}
	ws, _, err := websocket.Dial(context.Background(), res.WSURL, &websocket.DialOptions{Subprotocols: []string{console.Subprotocol},
		HTTPHeader: http.Header{"Origin": {e.Server.URL}}})
	if err != nil {
		b.Fatal(err)
	}
	ws.SetReadLimit(-1)
	c := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	b.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkProxyDownstream pushes 64 MiB an op from the VM side to the client.
func BenchmarkProxyDownstream(b *testing.B) {
	const per = 64 << 20
	c := benchConn(b)
	req := make([]byte, 9)
	req[0] = 'B'
	binary.BigEndian.PutUint64(req[1:], uint64(per)*uint64(b.N))
	b.SetBytes(per)
	b.ResetTimer()
	if _, err := c.Write(req); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	if n, err := io.CopyBuffer(io.Discard, io.LimitReader(c, int64(per)*int64(b.N)), buf); err != nil || n != int64(per)*int64(b.N) {
		b.Fatalf("got %d bytes: %v", n, err)
	}
}

// BenchmarkProxyEcho is one 16-byte round trip through the proxy an op.
func BenchmarkProxyEcho(b *testing.B) {
	c := benchConn(b)
	if _, err := c.Write([]byte{'E'}); err != nil {
		b.Fatal(err)
	}
	msg, got := make([]byte, 16), make([]byte, 16)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			b.Fatal(err)
		}
	}
}

// echoServer answers every byte on a loopback port with itself.
func echoServer(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return l.Addr().String()
}

func roundTrips(b *testing.B, c io.ReadWriter) {
	b.Helper()
	one := []byte{'x'}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(one); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, one); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPortForwardRoundTrip is the WebSocket hop of `vmctl port-forward` alone, in one
// process: one byte from a client.Stream through ServePortForward to a loopback echo server
// (standing in for the guest) and back, an op. BenchmarkLoopbackRoundTrip is the same echo
// server dialled directly, the floor.
func BenchmarkPortForwardRoundTrip(b *testing.B) {
	g := &guests{}
	g.ports.Store(9000, echoServer(b))
	e := consoletest.New(b, func(c *console.Config) { c.Guests = g; c.Log = slog.New(slog.DiscardHandler) })
	e.HandleFunc("GET /api/v1/vms/{id}/portforward", func(w http.ResponseWriter, r *http.Request) {
		if err := e.Console.ServePortForward(w, r, r.PathValue("id"), 9000, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), nil); err != nil {
			w.WriteHeader(http.StatusForbidden)
		}
	})
	alice := e.AddUser(b, "alice")
	v := natVM(b, e, alice, "web", api.NetworkNAT)
	res, err := e.Console.IssuePortForward(context.Background(), alice, "", v, 9000)
	if err != nil {
		b.Fatal(err)
	}
	s, err := client.New(e.Server.URL, alice.ID).DialStreamURL(context.Background(), res.WSURL)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	roundTrips(b, s)
}

func BenchmarkLoopbackRoundTrip(b *testing.B) {
	c, err := net.Dial("tcp", echoServer(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	roundTrips(b, c)
}
