package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/coder/websocket"

	"github.com/vmdhq/vmd/pkg/api"
)

// Stream is one TCP stream to a guest's port, carried by a port-forward
// WebSocket. An empty binary message is a half-close either way: CloseWrite
// sends one, and Read returns io.EOF on one (or on the server's normal
// close, which follows the guest closing its side).
type Stream struct {
	ws     *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	rd     io.Reader
	got    bool // the current message had bytes
	eof    bool
	wmu    sync.Mutex
}

// DialPortForward opens a TCP stream to port of a VM's guest through vmd,
// authenticated by this client's bearer token. Errors before the stream
// opens are *APIError (port_closed, conflict, …).
func (c *Client) DialPortForward(ctx context.Context, idOrName string, port int) (*Stream, error) {
	u := "ws" + strings.TrimPrefix(c.server, "http") + api.BasePath + "/vms/" + escape(idOrName) +
		"/portforward?port=" + strconv.Itoa(port)
	return c.dialStream(ctx, u, fmt.Sprintf("port-forward to vm %s port %d", idOrName, port))
}

// DialStreamURL opens a port-forward WebSocket at a one-time ws_url (from
// POST /vms/{id}/portforward), sending this client's bearer token along.
func (c *Client) DialStreamURL(ctx context.Context, wsURL string) (*Stream, error) {
	return c.dialStream(ctx, wsURL, "port-forward")
}

func (c *Client) dialStream(ctx context.Context, u, what string) (*Stream, error) {
	ws, err := c.dialWebSocket(ctx, u, what)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	return &Stream{ws: ws, ctx: sctx, cancel: cancel}, nil
}

// Read reads the guest's bytes; io.EOF once the guest closed its side.
func (s *Stream) Read(p []byte) (int, error) {
	for {
		if s.eof {
			return 0, io.EOF
		}
		if s.rd == nil {
			typ, r, err := s.ws.Reader(s.ctx)
			if err != nil {
				if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
					s.eof = true
					return 0, io.EOF
				}
				return 0, fmt.Errorf("port-forward stream: %w", err)
			}
			if typ != websocket.MessageBinary {
				return 0, errors.New("port-forward stream: text frame from server")
			}
			s.rd, s.got = r, false
		}
		n, err := s.rd.Read(p)
		if n > 0 {
			s.got = true
		}
		if errors.Is(err, io.EOF) {
			s.rd = nil
			if !s.got {
				s.eof = true // an empty message: the guest sends no more
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

// Write sends p to the guest.
func (s *Stream) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil // an empty message would be a half-close
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.ws.Write(s.ctx, websocket.MessageBinary, p); err != nil {
		return 0, fmt.Errorf("port-forward stream: %w", err)
	}
	return len(p), nil
}

// CloseWrite tells the guest this side sends no more (its read gets EOF).
func (s *Stream) CloseWrite() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.ws.Write(s.ctx, websocket.MessageBinary, nil)
}

// WaitClosed waits, once Read has returned io.EOF, for the server to close
// the stream: vmd does once both sides have ended and it has passed on all
// the client sent. A client whose guest ended its side first (busybox nc
// does at once) calls it beside its upload: reading answers vmd's pings,
// which otherwise go unanswered for the rest of the upload, and closing
// only on the server's close loses nothing, where closing first could drop
// the end of an upload still on its way to a slow guest. Anything the
// server sends meanwhile is discarded; ctx bounds the wait.
func (s *Stream) WaitClosed(ctx context.Context) error {
	for {
		_, r, err := s.ws.Reader(ctx)
		if err != nil {
			if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
				return nil
			}
			return fmt.Errorf("port-forward stream: %w", err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return fmt.Errorf("port-forward stream: %w", err)
		}
	}
}

// Close ends the stream both ways.
func (s *Stream) Close() error {
	// An error here means the server closed first: nothing is left to do.
	_ = s.ws.Close(websocket.StatusNormalClosure, "")
	s.cancel()
	return nil
}

// PortForward asks for a one-time port-forward link (the browser's way;
// a bearer client can use DialPortForward directly).
func (c *Client) PortForward(ctx context.Context, idOrName string, port int) (*api.PortForwardResponse, error) {
	var out api.PortForwardResponse
	if err := c.do(ctx, http.MethodPost, "/vms/"+escape(idOrName)+"/portforward",
		map[string]string{"port": strconv.Itoa(port)}, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
