package client

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"

	"github.com/coder/websocket"
)

// Logs opens a VM's serial log, GET /vms/{id}/logs: its last tail lines
// (0: all the server keeps at hand), then with follow what the guest prints
// next, until ctx ends or the server ends the stream. The caller closes the
// body.
func (c *Client) Logs(ctx context.Context, idOrName string, tail int, follow bool) (io.ReadCloser, error) {
	q := url.Values{}
	if tail > 0 {
		q.Set("tail", strconv.Itoa(tail))
	}
	if follow {
		q.Set("follow", "true")
	}
	u := BaseURL(c.server) + "/vms/" + escape(idOrName) + "/logs"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain")
	req.Header.Set("User-Agent", c.rc.Header.Get("User-Agent"))
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := *c.rc.GetClient()
	if follow {
		hc.Timeout = 0 // a follow lasts as long as the caller wants
	}
	res, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("logs of vm %s: %w", idOrName, err)
	}
	if res.StatusCode != http.StatusOK {
		defer res.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		return nil, fmt.Errorf("logs of vm %s: %w", idOrName, newAPIError(res.StatusCode, res.Header.Get("X-Request-Id"), body))
	}
	return res.Body, nil
}

// DialSerial opens a VM's serial port over the console WebSocket
// (type=serial), raw bytes both ways. The first connection to a VM's port
// types and later ones only watch; write takes typing over from whoever has
// it.
func (c *Client) DialSerial(ctx context.Context, idOrName string, write bool) (net.Conn, error) {
	res, err := c.Console(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	u := res.WSURL + "&type=serial"
	if write {
		u += "&write=true"
	}
	return c.dialWS(ctx, idOrName, u)
}

// dialWS opens a console WebSocket URL with this client's bearer token.
func (c *Client) dialWS(ctx context.Context, idOrName, wsURL string) (net.Conn, error) {
	ws, err := c.dialWebSocket(ctx, wsURL, "console of vm "+idOrName)
	if err != nil {
		return nil, err
	}
	return websocket.NetConn(ctx, ws, websocket.MessageBinary), nil
}
