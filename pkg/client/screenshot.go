package client

import (
	"context"
	"fmt"
	"net/http"
)

// Screenshot returns a PNG of a running VM's screen.
func (c *Client) Screenshot(ctx context.Context, idOrName string) ([]byte, error) {
	path := "/vms/" + escape(idOrName) + "/screenshot"
	resp, err := c.rc.R().SetContext(ctx).SetHeader("Accept", "image/png").Execute(http.MethodGet, path)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, fmt.Errorf("screenshot of vm %s: %w", idOrName, err)
	}
	if resp.StatusCode() != http.StatusOK {
		return nil, fmt.Errorf("screenshot of vm %s: %w", idOrName,
			newAPIError(resp.StatusCode(), resp.Header().Get("X-Request-Id"), resp.Body()))
	}
	if ct := resp.Header().Get("Content-Type"); ct != "image/png" {
		return nil, fmt.Errorf("screenshot of vm %s: the server sent %q, not a PNG", idOrName, ct)
	}
	return resp.Body(), nil
}
