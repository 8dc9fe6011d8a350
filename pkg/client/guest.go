package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
)

// Exec runs a command in the VM through its guest agent and returns how it
// ended. The request waits as long as the command may run (its timeout,
// default 30s), plus a margin, whatever the client's own timeout.
func (c *Client) Exec(ctx context.Context, idOrName string, req api.ExecRequest) (*api.ExecResponse, error) {
	wait := 30 * time.Second
	if req.Timeout != "" {
		if d, err := time.ParseDuration(req.Timeout); err == nil {
			wait = d
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hr, err := c.raw(ctx, http.MethodPost, "/vms/"+escape(idOrName)+"/exec", nil, bytesReader(body), int64(len(body)), "application/json", wait+30*time.Second)
	if err != nil {
		return nil, err
	}
	defer hr.Body.Close()
	var out api.ExecResponse
	if err := json.NewDecoder(hr.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("decode exec answer: %w", err)
	}
	return &out, nil
}

// Upload streams r into the guest file path (absolute) of the VM; size is
// r's length when known (-1 if not). Nothing is buffered whole.
func (c *Client) Upload(ctx context.Context, idOrName, path string, r io.Reader, size int64) (*api.FileResponse, error) {
	hr, err := c.raw(ctx, http.MethodPut, "/vms/"+escape(idOrName)+"/files", url.Values{"path": {path}},
		io.NopCloser(r), size, "application/octet-stream", 0)
	if err != nil {
		return nil, err
	}
	defer hr.Body.Close()
	var out api.FileResponse
	if err := json.NewDecoder(hr.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("decode upload answer: %w", err)
	}
	return &out, nil
}

// Download opens the guest file path (absolute) of the VM; the caller
// reads and closes the body. A body shorter than the file means the copy
// broke off (the server cannot say so once it has begun).
func (c *Client) Download(ctx context.Context, idOrName, path string) (io.ReadCloser, error) {
	hr, err := c.raw(ctx, http.MethodGet, "/vms/"+escape(idOrName)+"/files", url.Values{"path": {path}}, nil, 0, "", 0)
	if err != nil {
		return nil, err
	}
	return hr.Body, nil
}

func bytesReader(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// raw sends one streaming request with the client's credentials and
// returns a 2xx response for the caller to read; other statuses become
// *APIError. timeout bounds the whole exchange (0: only ctx).
func (c *Client) raw(ctx context.Context, method, path string, q url.Values, body io.ReadCloser, size int64, ctype string, timeout time.Duration) (*http.Response, error) {
	u := BaseURL(c.server) + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var cancel context.CancelFunc = func() {}
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		cancel()
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.rc.Header.Get("User-Agent"))
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := *c.rc.GetClient()
	hc.Timeout = 0 // a transfer may take long; ctx bounds it
	res, err := hc.Do(req)
	if err != nil {
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		defer cancel()
		defer res.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		return nil, newAPIError(res.StatusCode, res.Header.Get("X-Request-Id"), b)
	}
	res.Body = &cancelBody{ReadCloser: res.Body, cancel: cancel}
	return res, nil
}

// cancelBody ends a response's own context when it is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
