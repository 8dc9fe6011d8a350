package guestnet

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// benchGuest is a Network with the Go guest attached and configured. It dials nothing outside:
// every byte stays between the two stacks and the socketpair.
func benchGuest(b *testing.B, mtu int) (*Network, *testGuest) {
	b.Helper()
	n, err := New(Config{GuestMAC: guestMAC, MTU: mtu})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	g := newTestGuestMTU(b, mtu)
	g.link(b, ctx, n)
	g.dhcp(b, ctx)
	g.configure(b, DefaultGuestIP)
	return n, g
}

// BenchmarkDialGuestThroughput: vmd → guest port, 1 MiB per op into a sink in the Go guest.
func BenchmarkDialGuestThroughput(b *testing.B) { benchThroughput(b, defaultMTU) }

// BenchmarkDialGuestThroughputMTU65520: the same with passt's MTU on both ends: the cost is
// per frame, so this is the lever if a guest applies the DHCP MTU option.
func BenchmarkDialGuestThroughputMTU65520(b *testing.B) { benchThroughput(b, 65520) }

func benchThroughput(b *testing.B, mtu int) {
	n, g := benchGuest(b, mtu)
	ln := g.listen(b, 9000)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	c, err := n.DialGuest(context.Background(), 9000)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDialGuestRoundTrip: one byte to an echo server in the Go guest and back, per op.
func BenchmarkDialGuestRoundTrip(b *testing.B) {
	n, g := benchGuest(b, defaultMTU)
	go echo(g.listen(b, 9001))
	c, err := n.DialGuest(context.Background(), 9001)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	pingPong(b, c)
}

func pingPong(b *testing.B, c net.Conn) {
	b.Helper()
	one := []byte{'x'}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(one); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, one); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "µs/rtt")
}

// BenchmarkDialGuestConnect: DialGuest to a listening port and close, per op.
func BenchmarkDialGuestConnect(b *testing.B) {
	n, g := benchGuest(b, defaultMTU)
	go echo(g.listen(b, 9002))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := n.DialGuest(context.Background(), 9002)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
