package console

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func u16(n int) []byte   { return binary.BigEndian.AppendUint16(nil, uint16(n)) }
func i32(n int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(n)) }

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// viewerStream is what noVNC might send: every message kind, the input
// ones among them.
func viewerStream() (in, want []byte) {
	hello := join([]byte("RFB 003.008\n"), []byte{1})
	pixelFormat := join([]byte{0, 0, 0, 0}, bytes.Repeat([]byte{7}, 16))
	encodings := join([]byte{2, 0}, u16(3), i32(0), i32(-258), i32(-308))
	fbur := join([]byte{3, 1}, u16(0), u16(0), u16(720), u16(400))
	key := join([]byte{4, 1, 0, 0}, i32(0x61))
	pointer := join([]byte{5, 1}, u16(10), u16(20))
	cut := join([]byte{6, 0, 0, 0}, i32(5), []byte("hello"))
	extCut := join([]byte{6, 0, 0, 0}, i32(-8), []byte{0, 0, 0, 1, 'a', 'b', 'c', 'd'})
	qemuKey := join([]byte{255, 0}, u16(1), i32(0x61), i32(30))
	audio := join([]byte{255, 1}, u16(2), []byte{3, 2}, i32(44100))
	audioOn := join([]byte{255, 1}, u16(0))
	size := join([]byte{251, 0}, u16(1024), u16(768), []byte{1, 0}, bytes.Repeat([]byte{9}, 16))
	fence := join([]byte{248, 0, 0, 0}, i32(1), []byte{3, 'x', 'y', 'z'})
	contUpd := join([]byte{150, 1}, u16(0), u16(0), u16(720), u16(400))
	in = join(hello, []byte{0}, pixelFormat, encodings, fbur, key, pointer, cut, extCut, qemuKey, audio, audioOn, size, fence, contUpd, fbur)
	want = join(hello, []byte{1}, pixelFormat, encodings, fbur, fence, contUpd, fbur)
	return in, want
}

func TestInputFilter(t *testing.T) {
	in, want := viewerStream()
	for _, chunk := range []int{1, 2, 3, 7, 13, 64, len(in)} {
		f := newInputFilter()
		var out []byte
		for p := in; len(p) > 0; {
			k := min(chunk, len(p))
			var err error
			if out, err = f.filter(p[:k], out); err != nil {
				t.Fatalf("chunks of %d: %v", chunk, err)
			}
			p = p[k:]
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("chunks of %d: passed\n%v\nwant\n%v", chunk, out, want)
		}
	}
}

func TestInputFilterRefuses(t *testing.T) {
	for name, in := range map[string][]byte{
		"rfb 3.3":          []byte("RFB 003.003\n"),
		"not rfb":          []byte("GET / HTTP/1.1\r\n"),
		"unknown security": join([]byte("RFB 003.008\n"), []byte{19}),
		"unknown message":  join([]byte("RFB 003.008\n"), []byte{1, 1, 7}),
		"unknown qemu":     join([]byte("RFB 003.008\n"), []byte{1, 1, 255, 9}),
		"unknown audio op": join([]byte("RFB 003.008\n"), []byte{1, 1, 255, 1}, u16(7)),
	} {
		if _, err := newInputFilter().filter(in, nil); !errors.Is(err, errViewOnlyProtocol) {
			t.Errorf("%s: %v, want refused", name, err)
		}
	}
	// VNC authentication's response is passed on, then ClientInit.
	in := join([]byte("RFB 003.008\n"), []byte{2}, bytes.Repeat([]byte{5}, 16), []byte{0}, []byte{4, 1, 0, 0}, i32(0x61))
	out, err := newInputFilter().filter(in, nil)
	if want := join([]byte("RFB 003.008\n"), []byte{2}, bytes.Repeat([]byte{5}, 16), []byte{1}); err != nil || !bytes.Equal(out, want) {
		t.Fatalf("vnc auth: %v %v", out, err)
	}
}
