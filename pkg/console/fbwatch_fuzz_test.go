package console

import "testing"

// FuzzFBWatch feeds arbitrary VM-side bytes (and a client's first bytes) to
// the framebuffer watcher: it must never panic, must not hold on to more
// than one field, and must see the same thing however the stream is cut
// into reads.
func FuzzFBWatch(f *testing.F) {
	update := []byte{0, 0, 0, 1}
	f.Add(cat([]byte("RFB 003.008\n"), []byte{1, 1}, be32(0), serverInit("QEMU"), update), []byte("RFB 003.008\n\x01"), uint8(3))
	f.Add(cat([]byte("RFB 003.008\n"), []byte{2, 1, 2}, make([]byte, 16), be32(0), serverInit("x"), update), []byte("RFB 003.008\n\x02"), uint8(1))
	f.Add(cat([]byte("RFB 003.007\n"), []byte{1, 1}, serverInit("QEMU"), update), []byte("RFB 003.007\n\x01"), uint8(7))
	f.Add(cat([]byte("RFB 003.003\n"), be32(1), serverInit(""), update), []byte("RFB 003.003\n\x01"), uint8(2))
	f.Add(cat([]byte("RFB 003.008\n"), []byte{1, 1}, be32(0), serverInit("Q"), []byte{2, 3, 0, 0, 0}, be32(2), []byte("hi"),
		[]byte{1, 0, 0, 0, 0, 1}, make([]byte, 6), update), []byte("RFB 003.008\n\x01"), uint8(5))
	f.Add(cat([]byte("RFB 003.008\n"), []byte{1, 1}, be32(0), serverInit("Q"), []byte{3, 0, 0, 0}, be32(0xffffffff)), []byte("RFB 003.008\n\x01"), uint8(0))
	f.Add(cat([]byte("RFB 003.008\n"), []byte{0}, be32(3), []byte("no!")), []byte{}, uint8(4))
	f.Add([]byte("RFB 0a3.0\xff8\n\x01\x01"), []byte("RFB 003.008\n\x01"), uint8(1))
	f.Fuzz(func(t *testing.T, server, client []byte, chunk uint8) {
		whole := watchIn(server, client, len(server)+1)
		if got := watchIn(server, client, int(chunk)%17+1); got != whole {
			t.Fatalf("in reads of %d bytes the watch says %v, in one read %v", int(chunk)%17+1, got, whole)
		}
	})
}

// watchIn feeds server to a new watch in reads of n bytes and reports
// whether it saw the first FramebufferUpdate.
func watchIn(server, client []byte, n int) bool {
	w := &fbWatch{}
	w.client(client)
	seen := false
	for len(server) > 0 {
		k := min(n, len(server))
		if w.feed(server[:k]) {
			if seen {
				panic("fbWatch reported the first update twice")
			}
			seen = true
		}
		if cap(w.acc) > 64 {
			panic("fbWatch keeps more than a header")
		}
		server = server[k:]
	}
	return seen
}
