package qga

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// FileHandle is an open guest file, as guest-file-open returns it. It lives
// in the agent, not in the connection: it outlasts a reconnect, but not the
// agent's restart.
type FileHandle int64

// CheckPath refuses a guest path that is not absolute or has a ".."
// element, before anything is sent: vmd names files for the user, and a
// path is meant literally, not resolved. (Guests are Linux: "/" separates.)
func CheckPath(p string) error {
	if !path.IsAbs(p) || strings.ContainsRune(p, 0) {
		return fmt.Errorf("%q: %w", p, ErrBadPath)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return fmt.Errorf("%q: %w", p, ErrBadPath)
		}
	}
	return nil
}

// OpenFile is guest-file-open; mode is fopen(3)'s ("r", "w", "a", "r+", …).
func (c *Client) OpenFile(ctx context.Context, p, mode string) (FileHandle, error) {
	if err := CheckPath(p); err != nil {
		return 0, fmt.Errorf("open guest file: %w", err)
	}
	var h FileHandle
	if err := c.call(ctx, "guest-file-open", map[string]string{"path": p, "mode": mode}, &h); err != nil {
		return 0, fmt.Errorf("open guest file %s: %w", p, err)
	}
	return h, nil
}

// ReadFile is guest-file-read of at most n bytes (0: ChunkSize); eof says
// the end was reached.
func (c *Client) ReadFile(ctx context.Context, h FileHandle, n int) (data []byte, eof bool, err error) {
	if n <= 0 {
		n = c.opt.ChunkSize
	}
	var r fileChunk
	if err := c.call(ctx, "guest-file-read", map[string]any{"handle": h, "count": n}, &r); err != nil {
		return nil, false, err
	}
	return r.Buf, r.EOF, nil
}

type fileChunk struct {
	Count int    `json:"count"`
	Buf   []byte `json:"buf-b64"` // base64, by encoding/json or lift
	EOF   bool   `json:"eof"`
}

func (*fileChunk) liftKeys() []string { return []string{"buf-b64"} }

func (r *fileChunk) lift(_ string, b64 []byte) (err error) {
	r.Buf, err = decodeBase64(b64)
	return err
}

// WriteFile is guest-file-write; it returns the bytes the agent wrote,
// which can be fewer than len(p).
func (c *Client) WriteFile(ctx context.Context, h FileHandle, p []byte) (int, error) {
	var r struct {
		Count int `json:"count"`
	}
	err := c.call(ctx, "guest-file-write", struct {
		Handle FileHandle `json:"handle"`
		Buf    []byte     `json:"buf-b64"`
	}{h, p}, &r)
	return r.Count, err
}

// CloseFile is guest-file-close.
func (c *Client) CloseFile(ctx context.Context, h FileHandle) error {
	return c.call(ctx, "guest-file-close", map[string]FileHandle{"handle": h}, nil)
}

// seekFile is guest-file-seek; it returns the new position.
func (c *Client) seekFile(ctx context.Context, h FileHandle, off int64, whence string) (int64, error) {
	var r struct {
		Position int64 `json:"position"`
	}
	err := c.call(ctx, "guest-file-seek", map[string]any{"handle": h, "offset": off, "whence": whence}, &r)
	return r.Position, err
}

// closeAfterFailure closes a handle an Upload or Download gives up on, so
// the agent does not keep it; in the background when the caller's context
// has ended.
func (c *Client) closeAfterFailure(ctx context.Context, h FileHandle) {
	if ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
		defer cancel()
		if c.CloseFile(cctx, h) == nil {
			return
		}
	}
	c.background(func(bctx context.Context) { _ = c.CloseFile(bctx, h) })
}

// Upload implements Agent. It writes in ChunkSize pieces; a failure leaves
// the partly written file in the guest.
func (c *Client) Upload(ctx context.Context, p string, r io.Reader, mode fs.FileMode, progress Progress) (int64, error) {
	h, err := c.OpenFile(ctx, p, "w")
	if err != nil {
		return 0, fmt.Errorf("upload: %w", err)
	}
	n, err := c.upload(ctx, h, r, progress)
	if err != nil {
		c.closeAfterFailure(ctx, h)
		return n, fmt.Errorf("upload %s: %w", p, err)
	}
	if err := c.CloseFile(ctx, h); err != nil {
		return n, fmt.Errorf("upload %s: %w", p, err)
	}
	if mode != 0 {
		if err := c.chmod(ctx, p, mode); err != nil {
			return n, fmt.Errorf("upload %s: %w", p, err)
		}
	}
	return n, nil
}

func (c *Client) upload(ctx context.Context, h FileHandle, r io.Reader, progress Progress) (int64, error) {
	buf := make([]byte, c.opt.ChunkSize)
	var done int64
	for {
		m, rerr := io.ReadFull(r, buf)
		for chunk := buf[:m]; len(chunk) > 0; {
			w, err := c.WriteFile(ctx, h, chunk)
			if err != nil {
				return done, err
			}
			if w <= 0 {
				return done, errors.New("guest agent wrote nothing")
			}
			chunk = chunk[w:]
			done += int64(w)
		}
		if m > 0 && progress != nil {
			progress(done, -1)
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF), errors.Is(rerr, io.ErrUnexpectedEOF):
			return done, nil
		default:
			return done, fmt.Errorf("read source: %w", rerr)
		}
	}
}

// chmod sets permission bits: guest-file-open creates files with the
// agent's default mode and QGA has no chmod, so chmod(1) runs via guest-exec.
func (c *Client) chmod(ctx context.Context, p string, mode fs.FileMode) error {
	res, err := c.Exec(ctx, ExecRequest{Path: "chmod", Args: []string{strconv.FormatUint(uint64(mode.Perm()), 8), p}, Capture: true})
	if err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("chmod: exit status %d: %s", res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	return nil
}

// Download implements Agent.
func (c *Client) Download(ctx context.Context, p string, w io.Writer, progress Progress) (int64, error) {
	h, err := c.OpenFile(ctx, p, "r")
	if err != nil {
		return 0, fmt.Errorf("download: %w", err)
	}
	n, err := c.download(ctx, h, w, progress)
	if err != nil {
		c.closeAfterFailure(ctx, h)
		return n, fmt.Errorf("download %s: %w", p, err)
	}
	if err := c.CloseFile(ctx, h); err != nil {
		return n, fmt.Errorf("download %s: %w", p, err)
	}
	return n, nil
}

func (c *Client) download(ctx context.Context, h FileHandle, w io.Writer, progress Progress) (int64, error) {
	total := int64(-1)
	if progress != nil {
		// The size is only for the progress bar; /proc and pipes have none.
		if end, err := c.seekFile(ctx, h, 0, "end"); err == nil {
			if _, err := c.seekFile(ctx, h, 0, "set"); err != nil {
				return 0, err
			}
			if end > 0 {
				total = end
			}
		}
	}
	var done int64
	for {
		data, eof, err := c.ReadFile(ctx, h, c.opt.ChunkSize)
		if err != nil {
			return done, err
		}
		if len(data) > 0 {
			if _, err := w.Write(data); err != nil {
				return done, fmt.Errorf("write destination: %w", err)
			}
			done += int64(len(data))
			if progress != nil {
				progress(done, total)
			}
		}
		if eof || len(data) == 0 {
			return done, nil
		}
	}
}
