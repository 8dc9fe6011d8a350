package server

import "testing"

// TestNetHTTPError: net/http's own error answers are recognised, a
// handler's response never is, and checking one costs no allocation.
func TestNetHTTPError(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p      string
		status int // 0: not net/http's own error
	}{
		{"bad request", "HTTP/1.1 400 Bad Request" + netHTTPErrorHeaders + "400 Bad Request", 400},
		{"bad request with reason", "HTTP/1.1 400 Bad Request: missing required Host header" + netHTTPErrorHeaders + "400 Bad Request: missing required Host header", 400},
		{"headers too large", "HTTP/1.1 431 Request Header Fields Too Large" + netHTTPErrorHeaders + "431 Request Header Fields Too Large", 431},
		{"transfer encoding", "HTTP/1.1 501 Not Implemented" + netHTTPErrorHeaders + "Unsupported transfer encoding", 501},
		{"handler's text 400", "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Tue, 01 Dec 2026 08:00:00 GMT\r\n\r\nno", 0},
		{"handler's json", "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nDate: x\r\n\r\n{}", 0},
		{"200", "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nok", 0},
		{"a body", "HTTP/1.1 400 Bad Request" + netHTTPErrorHeaders + "HTTP/1.1 200 OK\r\n\r\n", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, ok := netHTTPError([]byte(tc.p))
			if ok != (tc.status != 0) || status != tc.status {
				t.Fatalf("netHTTPError = %d, %v; want %d", status, ok, tc.status)
			}
		})
	}
	normal := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: x\r\nX-Request-Id: 0123456789abcdef\r\n\r\n{}")
	if n := testing.AllocsPerRun(100, func() { netHTTPError(normal) }); n != 0 {
		t.Fatalf("%v allocations a response", n)
	}
}
