package guestnet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// countConn counts the link's writes (one frame each) to QEMU.
type countConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// BenchmarkQEMUGuestRoundTrip is the guest-network hop of `vmctl port-forward` alone (no
// vmctl, no WebSocket, no vmd server): a one-byte round trip through DialGuest into the real
// tiny guest (TCG) and its `nc -l -p 9001 -e cat`, against the same guest's second NIC on
// QEMU's own user network (slirp, restrict=on, hostfwd on 127.0.0.1 to a second
// `nc -l -p 9002 -e cat`), alternating one round trip
// each so both see the same load. It also counts the frames each way per round trip.
func BenchmarkQEMUGuestRoundTrip(b *testing.B) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		b.Fatal(err)
	}
	seed := map[string]string{
		"meta-data": "instance-id: guestnet-bench\nlocal-hostname: tiny\n",
		"user-data": "#cloud-config\nssh_authorized_keys:\n  - " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + "\n",
	}
	n, err := New(Config{GuestMAC: guestMAC})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	var fromGuest atomic.Int64
	deliver := n.link.deliver
	n.link.deliver = func(p tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) { fromGuest.Add(1); deliver(p, pkt) }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hostfwd := ln.Addr().String()
	ln.Close() // QEMU binds it
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	g := bootTiny(b, seed, "-netdev", "user,id=n1,restrict=on,hostfwd=tcp:"+hostfwd+"-:9002",
		"-device", "virtio-net-pci,netdev=n1,mac=52:54:00:12:34:57")
	cc := &countConn{Conn: g.connect(b)}
	go func() { _ = n.Attach(ctx, cc) }()
	g.waitSerial(b, "vmd-tiny: hostkey ecdsa-sha2-nistp256 ", 5*time.Minute)
	sc := sshClient(b, ctx, n, signer)
	defer sc.Close()
	out, err := run(sc, "ip link set eth1 up && ip addr add 10.0.2.15/24 dev eth1 && "+
		"(nc -l -p 9001 -e cat </dev/null >/dev/null 2>&1 &) && (nc -l -p 9002 -e cat </dev/null >/dev/null 2>&1 &) && sleep 1 && echo up")
	if err != nil || !strings.Contains(out, "up") {
		b.Fatalf("guest listeners: %v %q", err, out)
	}
	vc, err := n.DialGuest(ctx, 9001)
	if err != nil {
		b.Fatal(err)
	}
	defer vc.Close()
	var qc net.Conn
	waitFor(b, "hostfwd", time.Minute, func() bool {
		qc, err = net.Dial("tcp", hostfwd)
		return err == nil
	})
	defer qc.Close()
	one := func(c net.Conn) time.Duration {
		t0 := time.Now()
		if _, err := c.Write([]byte{'x'}); err != nil {
			b.Fatal(err)
		}
		var r [1]byte
		if _, err := io.ReadFull(c, r[:]); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	one(vc)
	one(qc) // the first opens the guest's side (nc execs cat)
	rounds := max(b.N, 200)
	var vd, qd []time.Duration
	w0, r0 := cc.writes.Load(), fromGuest.Load()
	b.ResetTimer()
	for i := 0; i < rounds; i++ {
		vd = append(vd, one(vc))
		qd = append(qd, one(qc))
	}
	b.StopTimer()
	w, r := cc.writes.Load()-w0, fromGuest.Load()-r0
	p50 := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	v, q := p50(vd), p50(qd)
	b.ReportMetric(float64(v.Microseconds()), "guestnet-rtt-µs")
	b.ReportMetric(float64(q.Microseconds()), "hostfwd-rtt-µs")
	b.ReportMetric(float64(w)/float64(rounds), "frames-to-guest/rtt")
	b.ReportMetric(float64(r)/float64(rounds), "frames-from-guest/rtt")
	b.Logf("one-byte round trip p50 over %d: DialGuest %v, hostfwd %v (%.2fx); frames per round trip: %.2f to the guest, %.2f from it",
		rounds, v, q, float64(v)/float64(q), float64(w)/float64(rounds), float64(r)/float64(rounds))
}
