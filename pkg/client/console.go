package client

import (
	"context"
	"net"
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
