package console

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func be32(v uint32) []byte { b := make([]byte, 4); binary.BigEndian.PutUint32(b, v); return b }

func serverInit(name string) []byte {
	b := append([]byte{2, 128, 1, 224}, make([]byte, 16)...) // 640x480, pixel format
	return append(append(b, be32(uint32(len(name)))...), name...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestFBWatch(t *testing.T) {
	update := []byte{0, 0, 0, 1}
	cut := cat([]byte{3, 0, 0, 0}, be32(5), []byte("hello"))
	colours := cat([]byte{1, 0, 0, 0, 0, 2}, make([]byte, 12))
	for _, c := range []struct {
		name   string
		server []byte
		client []byte
		want   bool
	}{
		{"3.8 none", cat([]byte("RFB 003.008\n"), []byte{1, 1}, be32(0), serverInit("QEMU"), update), []byte("RFB 003.008\n\x01"), true},
		{"3.8 vnc auth", cat([]byte("RFB 003.008\n"), []byte{2, 1, 2}, make([]byte, 16), be32(0), serverInit("x"), update), []byte("RFB 003.008\n\x02"), true},
		{"3.7 none has no result", cat([]byte("RFB 003.007\n"), []byte{1, 1}, serverInit("QEMU"), update), []byte("RFB 003.007\n\x01"), true},
		{"3.3 none", cat([]byte("RFB 003.003\n"), be32(1), serverInit(""), update), []byte("RFB 003.003\n\x01"), true},
		{"bell, cut text and colours first", cat([]byte("RFB 003.008\n"), []byte{1, 1}, be32(0), serverInit("QEMU"), []byte{2}, cut, colours, update), []byte("RFB 003.008\n\x01"), true},
		{"security failed", cat([]byte("RFB 003.008\n"), []byte{1, 1}, be32(1), serverInit("QEMU"), update), []byte("RFB 003.008\n\x01"), false},
		{"refused", cat([]byte("RFB 003.008\n"), []byte{0}, be32(3), []byte("no!"), update), nil, false},
		{"other security type", cat([]byte("RFB 003.008\n"), []byte{1, 19}, be32(0), serverInit("QEMU"), update), []byte("RFB 003.008\n\x13"), false},
		{"not rfb", []byte("HTTP/1.1 200 OK\r\n\r\n\x00"), nil, false},
	} {
		for _, chunk := range []int{1, 3, 1 << 20} {
			w := &fbWatch{}
			w.client(c.client)
			found := 0
			for p := c.server; len(p) > 0; {
				k := min(chunk, len(p))
				if w.feed(p[:k]) {
					found++
				}
				p = p[k:]
			}
			if got := found == 1; got != c.want || found > 1 {
				t.Errorf("%s (chunks of %d): found %d times, want %v", c.name, chunk, found, c.want)
			}
		}
	}
}

func TestMemoryTokens(t *testing.T) {
	m := NewMemoryTokens(nil)
	tok, hash, err := newToken()
	if err != nil || tok == hash || len(hash) != 64 {
		t.Fatalf("newToken: %q %q %v", tok, hash, err)
	}
	if err := m.Put(t.Context(), hash, Grant{VMID: "vm_1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Take(t.Context(), hashToken(tok)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Take(t.Context(), hash); err != ErrTokenInvalid {
		t.Fatalf("second take: %v", err)
	}
}
