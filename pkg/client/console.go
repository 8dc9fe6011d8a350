package client

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/coder/websocket"

	"github.com/vmdhq/vmd/pkg/api"
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
	return c.dialConsole(ctx, idOrName, res)
}

// DialConsoleViewOnly is DialConsole for a view-only session: the proxy
// drops its keyboard, pointer and clipboard input.
func (c *Client) DialConsoleViewOnly(ctx context.Context, idOrName string) (net.Conn, error) {
	res, err := c.ConsoleViewOnly(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	return c.dialConsole(ctx, idOrName, res)
}

func (c *Client) dialConsole(ctx context.Context, idOrName string, res *api.ConsoleResponse) (net.Conn, error) {
	hdr := http.Header{}
	if c.token != "" {
		hdr.Set("Authorization", "Bearer "+c.token)
	}
	ws, resp, err := websocket.Dial(ctx, res.WSURL, &websocket.DialOptions{
		// coder/websocket applies the client's Timeout to the handshake only.
		HTTPClient:      c.rc.GetClient(),
		HTTPHeader:      hdr,
		Subprotocols:    []string{ConsoleSubprotocol},
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols && resp.Body != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			return nil, fmt.Errorf("console of vm %s: %w", idOrName,
				newAPIError(resp.StatusCode, resp.Header.Get("X-Request-Id"), body))
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("console of vm %s: open websocket: %w", idOrName, err)
	}
	ws.SetReadLimit(16 << 20)
	return websocket.NetConn(ctx, ws, websocket.MessageBinary), nil
}
