package rfb

import (
	"bytes"
	"context"
	"encoding/binary"
	"image"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// scripted is a net.Conn whose peer is a fixed byte stream: reads come from
// it, writes are kept, deadlines do nothing (the stream ends instead).
type scripted struct {
	r       *bytes.Reader
	written bytes.Buffer
}

func (s *scripted) Read(p []byte) (int, error)       { return s.r.Read(p) }
func (s *scripted) Write(p []byte) (int, error)      { return s.written.Write(p) }
func (s *scripted) Close() error                     { return nil }
func (s *scripted) LocalAddr() net.Addr              { return &net.UnixAddr{Name: "fuzz", Net: "unix"} }
func (s *scripted) RemoteAddr() net.Addr             { return &net.UnixAddr{Name: "fuzz", Net: "unix"} }
func (s *scripted) SetDeadline(time.Time) error      { return nil }
func (s *scripted) SetReadDeadline(time.Time) error  { return nil }
func (s *scripted) SetWriteDeadline(time.Time) error { return nil }

// serverInit is a valid RFB 3.8 server side up to ServerInit: version,
// security None, result OK, ServerInit of w×h named name.
func serverInit(w, h uint16, name string) []byte {
	b := []byte("RFB 003.008\n")
	b = append(b, 1, 1)       // one security type: None
	b = append(b, 0, 0, 0, 0) // SecurityResult OK
	b = binary.BigEndian.AppendUint16(b, w)
	b = binary.BigEndian.AppendUint16(b, h)
	b = append(b, make([]byte, 16)...) // pixel format
	b = binary.BigEndian.AppendUint32(b, uint32(len(name)))
	return append(b, name...)
}

// rawUpdate is a FramebufferUpdate of one Raw rectangle filled with px.
func rawUpdate(x, y, w, h uint16, px byte) []byte {
	b := []byte{0, 0, 0, 1}
	for _, v := range []uint16{x, y, w, h} {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	b = append(b, 0, 0, 0, 0) // Raw
	return append(b, bytes.Repeat([]byte{px}, 4*int(w)*int(h))...)
}

// FuzzHandshake feeds arbitrary server bytes to the client's handshake and
// first update: it must return an error or a client, never panic, never
// allocate by a length the server made up, and never draw outside the screen.
func FuzzHandshake(f *testing.F) {
	ok := serverInit(8, 4, "tiny")
	f.Add(ok)
	f.Add(append(append([]byte{}, ok...), rawUpdate(0, 0, 8, 4, 0x7f)...))
	f.Add(append(append([]byte{}, ok...), rawUpdate(6, 3, 4, 2, 1)...)) // overhangs the screen
	f.Add(append(append([]byte{}, ok...), 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, 3, 0, 0, 0, 0, 0, 0, 2, 'h', 'i'))
	f.Add([]byte("RFB 003.003\n"))
	f.Add([]byte("RFB 003.008\n\x00\x00\x00\x00\x05nope!"))
	f.Add([]byte("RFB 003.008\n\x01\x02"))
	f.Add(append(serverInit(1, 1, ""), 0xff))
	f.Add([]byte("HTTP/1.1 400 Bad Request\r\n"))
	huge := serverInit(8, 4, "")
	binary.BigEndian.PutUint32(huge[len(huge)-4:], 0xffffffff) // a 4 GiB desktop name
	f.Add(huge)
	f.Fuzz(func(t *testing.T, data []byte) {
		conn := &scripted{r: bytes.NewReader(data)}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := Handshake(ctx, conn)
		if err != nil {
			if c != nil {
				t.Fatal("a client and an error")
			}
			return
		}
		if len(c.Name) > 1<<16 {
			t.Fatalf("desktop name of %d bytes accepted", len(c.Name))
		}
		if !bytes.HasPrefix(conn.written.Bytes(), []byte("RFB 003.008\n\x01\x01")) {
			t.Fatalf("client wrote %q, want version, None and shared", conn.written.Bytes())
		}
		if c.Width > MaxScreen || c.Height > MaxScreen {
			t.Fatalf("screen of %dx%d accepted", c.Width, c.Height)
		}
		if c.Width*c.Height > 1<<16 {
			return // drawing a big screen tests nothing more, slowly
		}
		img := image.NewRGBA(image.Rect(0, 0, c.Width, c.Height))
		_, _ = c.ReadUpdate(ctx, img)
		if len(img.Pix) != 4*c.Width*c.Height {
			t.Fatalf("image resized to %d bytes", len(img.Pix))
		}
	})
}

// TestHandshakeRefusesHugeName: a ServerInit that announces a 4 GiB desktop
// name is refused before anything that size is allocated.
func TestHandshakeRefusesHugeName(t *testing.T) {
	b := serverInit(8, 4, "")
	binary.BigEndian.PutUint32(b[len(b)-4:], 0xffffffff)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Handshake(context.Background(), &scripted{r: bytes.NewReader(b)})
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "desktop name of 4294967295 bytes") {
		t.Fatalf("err = %v, want the name refused by its length", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("allocated %d bytes for a refused name", n)
	}
}
