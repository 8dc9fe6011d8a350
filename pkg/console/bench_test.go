package console_test

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/coder/websocket"

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
