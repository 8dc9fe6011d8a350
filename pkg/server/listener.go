package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/api"
)

// Listener wraps ln so that the few answers net/http writes by itself,
// before any handler runs, also go out in the API's JSON error shape with
// a request id: a request line it cannot parse (GET /vms/% has a bad
// escape), a missing Host header, headers over the limit, an unknown
// transfer encoding. net/http offers no hook for these; it writes them
// to the connection in one call, as exactly the status line, its three
// fixed error headers and a short text, which no handler's response
// resembles (those carry Date and sorted headers), so that one write is
// recognised and replaced. Serve vmd's handler on the listener returned.
func Listener(ln net.Listener, log *slog.Logger) net.Listener {
	if log == nil {
		log = slog.Default()
	}
	return &jsonErrorListener{Listener: ln, log: log}
}

type jsonErrorListener struct {
	net.Listener
	log *slog.Logger
}

func (l *jsonErrorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &jsonErrorConn{Conn: c, log: l.log}, nil
}

type jsonErrorConn struct {
	net.Conn
	log *slog.Logger
}

// netHTTPErrorHeaders follow the status line of net/http's own error answers
// (net/http server.go, conn.serve).
const netHTTPErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// Made once: every response's first write is checked against them.
var (
	http11Prefix   = []byte("HTTP/1.1 ")
	crlf           = []byte("\r\n")
	netHTTPErrTail = []byte(netHTTPErrorHeaders[2:]) // the headers after the status line's CRLF
)

func (c *jsonErrorConn) Write(p []byte) (int, error) {
	if !bytes.HasPrefix(p, http11Prefix) {
		return c.Conn.Write(p)
	}
	status, ok := netHTTPError(p)
	if !ok {
		return c.Conn.Write(p)
	}
	rid := newRequestID()
	code, msg := netHTTPErrorCode(status)
	body, _ := json.Marshal(api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: msg, RequestID: rid}})
	body = append(body, '\n')
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\n")
	b.WriteString("Content-Type: application/json\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n")
	b.WriteString(echo.HeaderXRequestID + ": " + rid + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	b.Write(body)
	c.log.Info("request refused before routing", "request_id", rid, "status", status,
		"remote_addr", c.RemoteAddr().String())
	if _, err := c.Conn.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// netHTTPError reports whether p is one whole error answer of net/http
// itself, and its status.
func netHTTPError(p []byte) (int, bool) {
	line, rest, ok := bytes.Cut(p, crlf)
	if !ok || !bytes.HasPrefix(rest, netHTTPErrTail) {
		return 0, false
	}
	f := strings.Fields(string(line))
	if len(f) < 2 {
		return 0, false
	}
	status, err := strconv.Atoi(f[1])
	if err != nil || status < 400 || status > 599 {
		return 0, false
	}
	// The body is a short text, never another response.
	if text := rest[len(netHTTPErrTail):]; len(text) > 512 || bytes.Contains(text, crlf) {
		return 0, false
	}
	return status, true
}

// CloseWrite lets net/http half-close the connection after an error, as
// it does on a plain TCP connection.
func (c *jsonErrorConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps sendfile for response bodies (static files); bodies are
// never one of net/http's error answers.
func (c *jsonErrorConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}
