// Package rfb is a minimal RFB 3.8 (VNC) client for tests and benchmarks:
// security type None, a shared session, 32-bit true colour, Raw encoding
// only. It is enough to check that a console path reaches a real guest
// screen; it is no viewer.
package rfb

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"
	"net"
	"time"
)

// MaxScreen is the largest screen side the client accepts; guests' screens
// are far smaller, and RFB's 16-bit sides would let a server ask for 16 GiB.
const MaxScreen = 8192

// Client is one RFB connection after the handshake.
type Client struct {
	conn   net.Conn
	r      *bufio.Reader
	Width  int
	Height int
	Name   string
	// Version is the protocol version the server offered, e.g. "RFB 003.008".
	Version string
}

// Handshake runs the RFB 3.8 handshake on conn (version, security None,
// ClientInit shared, ServerInit), then asks for 32-bit pixels in Raw
// encoding. ctx bounds the handshake only.
func Handshake(ctx context.Context, conn net.Conn) (*Client, error) {
	c := &Client{conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
	stop := c.bound(ctx)
	defer stop()
	var ver [12]byte
	if _, err := io.ReadFull(c.r, ver[:]); err != nil {
		return nil, fmt.Errorf("rfb: read version: %w", err)
	}
	c.Version = string(ver[:11])
	if string(ver[:4]) != "RFB " {
		return nil, fmt.Errorf("rfb: not an RFB server: %q", ver[:])
	}
	if string(ver[:11]) < "RFB 003.008" {
		return nil, fmt.Errorf("rfb: server speaks %s, need 003.008", ver[4:11])
	}
	if _, err := conn.Write([]byte("RFB 003.008\n")); err != nil {
		return nil, fmt.Errorf("rfb: write version: %w", err)
	}
	n, err := c.r.ReadByte()
	if err != nil {
		return nil, fmt.Errorf("rfb: read security types: %w", err)
	}
	if n == 0 {
		return nil, fmt.Errorf("rfb: server refused: %s", c.reason())
	}
	types := make([]byte, n)
	if _, err := io.ReadFull(c.r, types); err != nil {
		return nil, fmt.Errorf("rfb: read security types: %w", err)
	}
	none := false
	for _, t := range types {
		none = none || t == 1
	}
	if !none {
		return nil, fmt.Errorf("rfb: server does not offer security type None (offers %v)", types)
	}
	if _, err := conn.Write([]byte{1}); err != nil {
		return nil, fmt.Errorf("rfb: choose security: %w", err)
	}
	var res [4]byte
	if _, err := io.ReadFull(c.r, res[:]); err != nil {
		return nil, fmt.Errorf("rfb: read security result: %w", err)
	}
	if binary.BigEndian.Uint32(res[:]) != 0 {
		return nil, fmt.Errorf("rfb: security failed: %s", c.reason())
	}
	if _, err := conn.Write([]byte{1}); err != nil { // ClientInit, shared
		return nil, fmt.Errorf("rfb: client init: %w", err)
	}
	var si [24]byte
	if _, err := io.ReadFull(c.r, si[:]); err != nil {
		return nil, fmt.Errorf("rfb: read server init: %w", err)
	}
	c.Width = int(binary.BigEndian.Uint16(si[0:2]))
	c.Height = int(binary.BigEndian.Uint16(si[2:4]))
	// A snapshot is Width×Height×4 bytes: 65535² would be 16 GiB.
	if c.Width > MaxScreen || c.Height > MaxScreen {
		return nil, fmt.Errorf("rfb: screen of %dx%d, more than %d a side", c.Width, c.Height, MaxScreen)
	}
	// The length is checked before the allocation: a server could ask for 4 GiB.
	nameLen := binary.BigEndian.Uint32(si[20:24])
	if nameLen > 1<<16 {
		return nil, fmt.Errorf("rfb: desktop name of %d bytes", nameLen)
	}
	name := make([]byte, nameLen)
	if _, err := io.ReadFull(c.r, name); err != nil {
		return nil, fmt.Errorf("rfb: read desktop name: %w", err)
	}
	c.Name = string(name)

	// SetPixelFormat: 32 bpp, depth 24, little-endian, true colour, 8 bits
	// a channel with red at bit 16: bytes arrive as B, G, R, X.
	msg := []byte{0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0}
	// SetEncodings: Raw only.
	msg = append(msg, 2, 0, 0, 1, 0, 0, 0, 0)
	if _, err := conn.Write(msg); err != nil {
		return nil, fmt.Errorf("rfb: set pixel format: %w", err)
	}
	return c, nil
}

// bound applies ctx's deadline to the connection until the returned func runs.
func (c *Client) bound(ctx context.Context) func() {
	if d, ok := ctx.Deadline(); ok {
		_ = c.conn.SetDeadline(d)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = c.conn.SetDeadline(time.Unix(1, 0))
		case <-done:
		}
	}()
	return func() {
		close(done)
		_ = c.conn.SetDeadline(time.Time{})
	}
}

func (c *Client) reason() string {
	var l [4]byte
	if _, err := io.ReadFull(c.r, l[:]); err != nil {
		return "(no reason)"
	}
	b := make([]byte, min(binary.BigEndian.Uint32(l[:]), 4096))
	_, _ = io.ReadFull(c.r, b)
	return string(b)
}

// RequestUpdate sends a FramebufferUpdateRequest for the whole screen.
func (c *Client) RequestUpdate(incremental bool) error {
	m := []byte{3, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if incremental {
		m[1] = 1
	}
	binary.BigEndian.PutUint16(m[6:], uint16(c.Width))
	binary.BigEndian.PutUint16(m[8:], uint16(c.Height))
	_, err := c.conn.Write(m)
	return err
}

// ErrEncoding is a rectangle in an encoding this client did not ask for.
var ErrEncoding = errors.New("rfb: unsupported encoding")

// ReadUpdate reads server messages until one FramebufferUpdate has been
// drawn into img (which must cover the screen), skipping colour maps,
// bells and cut text. It returns the number of rectangles drawn.
func (c *Client) ReadUpdate(ctx context.Context, img *image.RGBA) (int, error) {
	stop := c.bound(ctx)
	defer stop()
	for {
		t, err := c.r.ReadByte()
		if err != nil {
			return 0, fmt.Errorf("rfb: read message: %w", err)
		}
		switch t {
		case 0:
			return c.readRects(img)
		case 1: // SetColourMapEntries
			var h [5]byte
			if _, err := io.ReadFull(c.r, h[:]); err != nil {
				return 0, err
			}
			if _, err := c.r.Discard(6 * int(binary.BigEndian.Uint16(h[3:5]))); err != nil {
				return 0, err
			}
		case 2: // Bell
		case 3: // ServerCutText
			var h [7]byte
			if _, err := io.ReadFull(c.r, h[:]); err != nil {
				return 0, err
			}
			if _, err := c.r.Discard(int(binary.BigEndian.Uint32(h[3:7]))); err != nil {
				return 0, err
			}
		default:
			return 0, fmt.Errorf("rfb: unknown server message %d", t)
		}
	}
}

func (c *Client) readRects(img *image.RGBA) (int, error) {
	var h [3]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return 0, fmt.Errorf("rfb: read update: %w", err)
	}
	n := int(binary.BigEndian.Uint16(h[1:3]))
	var row []byte
	for i := 0; i < n; i++ {
		var rh [12]byte
		if _, err := io.ReadFull(c.r, rh[:]); err != nil {
			return i, fmt.Errorf("rfb: read rectangle: %w", err)
		}
		x, y := int(binary.BigEndian.Uint16(rh[0:2])), int(binary.BigEndian.Uint16(rh[2:4]))
		w, hh := int(binary.BigEndian.Uint16(rh[4:6])), int(binary.BigEndian.Uint16(rh[6:8]))
		if enc := int32(binary.BigEndian.Uint32(rh[8:12])); enc != 0 {
			return i, fmt.Errorf("%w %d", ErrEncoding, enc)
		}
		if cap(row) < 4*w {
			row = make([]byte, 4*w)
		}
		row = row[:4*w]
		for yy := 0; yy < hh; yy++ {
			if _, err := io.ReadFull(c.r, row); err != nil {
				return i, fmt.Errorf("rfb: read pixels: %w", err)
			}
			if y+yy >= img.Rect.Max.Y {
				continue
			}
			for xx := 0; xx < w && x+xx < img.Rect.Max.X; xx++ {
				o := img.PixOffset(x+xx, y+yy)
				p := row[4*xx:]
				img.Pix[o], img.Pix[o+1], img.Pix[o+2], img.Pix[o+3] = p[2], p[1], p[0], 255
			}
		}
	}
	return n, nil
}

// Snapshot asks for the whole screen and reads it into a new image.
func (c *Client) Snapshot(ctx context.Context) (*image.RGBA, error) {
	img := image.NewRGBA(image.Rect(0, 0, c.Width, c.Height))
	if err := c.RequestUpdate(false); err != nil {
		return nil, fmt.Errorf("rfb: request update: %w", err)
	}
	if _, err := c.ReadUpdate(ctx, img); err != nil {
		return nil, err
	}
	return img, nil
}

// Colours counts the distinct colours of img, stopping at limit.
func Colours(img *image.RGBA, limit int) int {
	seen := map[[3]byte]struct{}{}
	for o := 0; o+3 < len(img.Pix) && len(seen) < limit; o += 4 {
		seen[[3]byte{img.Pix[o], img.Pix[o+1], img.Pix[o+2]}] = struct{}{}
	}
	return len(seen)
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }
