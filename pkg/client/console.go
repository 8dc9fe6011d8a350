package client

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/coder/websocket"
)

// ConsoleSubprotocol is the WebSocket subprotocol of the console: binary
// frames of raw RFB, as websockify names it.
const ConsoleSubprotocol = "binary"

// DialConsole fetches a fresh single-use console token for a VM and opens
// its console WebSocket with this client's bearer token. The returned
// connection carries raw RFB (VNC) both ways; it is closed when ctx ends.
func (c *Client) DialConsole(ctx context.Context, idOrName string) (net.Conn, error) {
	res, err := c.Console(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	return c.dialWS(ctx, idOrName, res.WSURL)
}

// DialConsoleViewOnly is DialConsole for a view-only session: the proxy
// drops its keyboard, pointer and clipboard input.
func (c *Client) DialConsoleViewOnly(ctx context.Context, idOrName string) (net.Conn, error) {
	res, err := c.ConsoleViewOnly(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	return c.dialWS(ctx, idOrName, res.WSURL)
}

// dialWebSocket opens a WebSocket of the console's subprotocol (console,
// serial, port-forward) with this client's bearer token. A refusal is the
// server's API error, what naming the stream in either error.
func (c *Client) dialWebSocket(ctx context.Context, u, what string) (*websocket.Conn, error) {
	hdr := http.Header{}
	if c.token != "" {
		hdr.Set("Authorization", "Bearer "+c.token)
	}
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient:      c.rc.GetClient(),
		HTTPHeader:      hdr,
		Subprotocols:    []string{ConsoleSubprotocol},
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols && resp.Body != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			return nil, fmt.Errorf("%s: %w", what, newAPIError(resp.StatusCode, resp.Header.Get("X-Request-Id"), body))
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%s: open websocket: %w", what, err)
	}
	ws.SetReadLimit(16 << 20)
	return ws, nil
}
