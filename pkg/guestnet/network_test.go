package guestnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/internal/testutil/netns"
)

// dialLog is the forwarder's Dial hook: it records every address vmd dials for the guest, so a
// test sees that a denied destination was never dialed at all.
type dialLog struct {
	mu    sync.Mutex
	addrs []string
}

func (d *dialLog) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, addr)
	d.mu.Unlock()
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}

func (d *dialLog) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.addrs)
}

// echo serves ln, echoing each connection until EOF, then half-closing.
func echo(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
			if cw, ok := c.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
		}()
	}
}

// roundTrip sends data over c, half-closes, and returns everything echoed back.
func roundTrip(t testing.TB, c net.Conn, data []byte) []byte {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	return got
}

// dnsStandIn is the "host's resolver" for the test: a DNS server on the namespace's loopback
// that knows one name, reached through a real net.Resolver.
func dnsStandIn(t testing.TB) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if len(r.Question) == 1 && r.Question[0].Name == "outside.test." && r.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: "outside.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(10, 231, 0, 2)})
		} else {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: mux}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	addr := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", addr)
	}}
}

// TestNetworkGoGuest drives a Network from a Go guest, inside namespaces the test creates: the
// forwarder's only way out is a veth to the test's outside host.
func TestNetworkGoGuest(t *testing.T) {
	env, inChild := netns.Run(t)
	if !inChild {
		return
	}
	outside := netns.Listen(t, env.Outside, "tcp", netip.AddrPortFrom(env.OutsideAddr, 7777).String())
	go echo(outside)
	outsideUDP := listenUDPIn(t, env.Outside, netip.AddrPortFrom(env.OutsideAddr, 9999).String())
	// Services the guest must not reach, listening for real: a broken policy would connect.
	for _, a := range []string{"127.0.0.1:7778", netip.AddrPortFrom(env.InsideAddr, 7779).String()} {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go echo(ln)
	}
	resolver := dnsStandIn(t)
	baseline := runtime.NumGoroutine()

	dials := &dialLog{}
	n, err := New(Config{
		GuestMAC: guestMAC,
		Policy:   Policy{Allow: []netip.Prefix{netns.Prefix}},
		Resolver: resolver,
		Dial:     dials.dial,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if _, err := n.DialGuest(ctx, 22); !errors.Is(err, ErrNoLease) {
		t.Fatalf("DialGuest before a lease = %v, want ErrNoLease", err)
	}
	g := newTestGuest(t)
	attached, guestEnd := g.link(t, ctx, n)

	ack := g.dhcp(t, ctx)
	if got := ack.YourIPAddr.String(); got != DefaultGuestIP.String() {
		t.Fatalf("DHCP address = %s, want %s", got, DefaultGuestIP)
	}
	if r := ack.Router(); len(r) != 1 || !r[0].Equal(DefaultGatewayIP.AsSlice()) {
		t.Fatalf("DHCP router = %v, want %s", r, DefaultGatewayIP)
	}
	if d := ack.DNS(); len(d) != 1 || !d[0].Equal(DefaultGatewayIP.AsSlice()) {
		t.Fatalf("DHCP DNS = %v, want %s", d, DefaultGatewayIP)
	}
	if ones, _ := ack.SubnetMask().Size(); ones != 24 {
		t.Fatalf("DHCP mask /%d, want /24", ones)
	}
	g.configure(t, DefaultGuestIP)

	// DNS on the gateway, answered from the host's resolver.
	gwDNS := netip.AddrPortFrom(DefaultGatewayIP, 53)
	uc, err := gonet.DialUDP(g.s, nil, &tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(DefaultGatewayIP.As4()), Port: 53}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	// Other UDP is dropped: this datagram to the outside host must never arrive.
	stray, err := gonet.DialUDP(g.s, nil, &tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(env.OutsideAddr.As4()), Port: 9999}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stray.Write([]byte("leak")); err != nil {
		t.Fatal(err)
	}
	stray.Close()
	q := new(dns.Msg)
	q.SetQuestion("outside.test.", dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 10 * time.Second}).ExchangeWithConnContext(ctx, q, &dns.Conn{Conn: uc})
	uc.Close()
	if err != nil {
		t.Fatalf("DNS via %s: %v", gwDNS, err)
	}
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.231.0.2" {
		t.Fatalf("DNS answer = %v, want outside.test. A 10.231.0.2", r.Answer)
	}
	// The stray datagram went through the stack before the DNS query did.
	_ = outsideUDP.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, _, err := outsideUDP.ReadFrom(make([]byte, 64)); err == nil {
		t.Fatal("a guest UDP datagram reached the outside host")
	}

	testutil.Eventually(t, 10*time.Second, "the guest's lease", func() bool { _, ok := n.Lease(); return ok })
	if l, _ := n.Lease(); l != DefaultGuestIP {
		t.Fatalf("Lease = %s, want %s", l, DefaultGuestIP)
	}

	// Outbound to an allowed outside address works.
	allowed := netip.AddrPortFrom(env.OutsideAddr, 7777)
	c, err := g.dial(ctx, allowed)
	if err != nil {
		t.Fatalf("guest → %s: %v", allowed, err)
	}
	if got := roundTrip(t, c, []byte("hello outside")); string(got) != "hello outside" {
		t.Fatalf("echo from outside = %q", got)
	}
	c.Close()

	// Denied destinations: refused by the policy before any dial.
	for _, dst := range []string{
		netip.AddrPortFrom(env.InsideAddr, 7779).String(), // the host's own address, inside the allowed /24
		"169.254.169.254:80",                              // cloud metadata
		"10.232.0.9:80",                                   // a private range not allowed
		"192.168.127.1:22",                                // the gateway itself
	} {
		c, err := g.dial(ctx, netip.MustParseAddrPort(dst))
		if err == nil {
			c.Close()
			t.Fatalf("guest → %s connected", dst)
		}
		if !strings.Contains(err.Error(), "refused") {
			t.Fatalf("guest → %s: %v, want connection refused", dst, err)
		}
	}
	if got, want := dials.list(), []string{allowed.String()}; !slices.Equal(got, want) {
		t.Fatalf("vmd dialed %v, want only %v", got, want)
	}

	// vmd → guest port, 10 MB both ways, intact.
	go echo(g.listen(t, 8080))
	data := make([]byte, 10<<20)
	_, _ = rand.Read(data)
	gc, err := n.DialGuest(ctx, 8080)
	if err != nil {
		t.Fatalf("DialGuest(8080): %v", err)
	}
	if got := roundTrip(t, gc, data); sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("10 MB through DialGuest: got %d bytes, sha256 differs", len(got))
	}
	gc.Close()

	if _, err := n.DialGuest(ctx, 8081); !errors.Is(err, ErrPortClosed) {
		t.Fatalf("DialGuest(closed port) = %v, want ErrPortClosed", err)
	}
	for _, p := range []int{0, -1, 65536} {
		if _, err := n.DialGuest(ctx, p); !errors.Is(err, ErrInvalidPort) {
			t.Fatalf("DialGuest(%d) = %v, want ErrInvalidPort", p, err)
		}
	}

	// QEMU's side drops (vmd restart, or QEMU re-listening): Attach returns, a new connection
	// carries on with the same guest address.
	guestEnd.Close()
	select {
	case err := <-attached:
		if err == nil || errors.Is(err, ErrClosed) {
			t.Fatalf("Attach after the link dropped = %v, want a link error", err)
		}
	case <-ctx.Done():
		t.Fatal("Attach did not return after the link dropped")
	}
	attached, _ = g.link(t, ctx, n)
	if l, ok := n.Lease(); !ok || l != DefaultGuestIP {
		t.Fatalf("Lease after reattach = %s %v", l, ok)
	}
	gc, err = n.DialGuest(ctx, 8080)
	if err != nil {
		t.Fatalf("DialGuest after reattach: %v", err)
	}
	if got := roundTrip(t, gc, []byte("again")); string(got) != "again" {
		t.Fatalf("echo after reattach = %q", got)
	}
	gc.Close()
	c, err = g.dial(ctx, allowed)
	if err != nil {
		t.Fatalf("guest → outside after reattach: %v", err)
	}
	if got := roundTrip(t, c, []byte("out again")); string(got) != "out again" {
		t.Fatalf("outside echo after reattach = %q", got)
	}
	c.Close()

	// A connection still open through the forwarder when the network closes.
	open, err := g.dial(ctx, allowed)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if _, err := open.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(open, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}

	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-attached; !errors.Is(err, ErrClosed) {
		t.Fatalf("Attach after Close = %v, want ErrClosed", err)
	}
	if _, err := n.DialGuest(ctx, 8080); !errors.Is(err, ErrClosed) {
		t.Fatalf("DialGuest after Close = %v, want ErrClosed", err)
	}
	host, _ := socketpair(t)
	if err := n.Attach(ctx, host); !errors.Is(err, ErrClosed) {
		t.Fatalf("Attach on a closed network = %v, want ErrClosed", err)
	}
	open.Close()
	g.close()
	cancel()
	noLeakedGoroutines(t, baseline)
}

func listenUDPIn(t testing.TB, ns, addr string) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	netns.Do(t, ns, func() error {
		var err error
		pc, err = net.ListenPacket("udp", addr)
		return err
	})
	t.Cleanup(func() { pc.Close() })
	return pc
}

// A peer that sends a frame length the switch must not trust loses its link; the network
// takes the next one. No packet leaves: the forwarder has nothing to dial.
func TestAttachRejectsBadFrameLengths(t *testing.T) {
	n, err := New(Config{GuestMAC: guestMAC})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, size := range []uint32{0, 13, maxFrame + 1, 0xffffffff} {
		host, guest := socketpair(t)
		done := make(chan error, 1)
		go func() { done <- n.Attach(ctx, host) }()
		var frame bytes.Buffer
		// One good broadcast frame first (an ARP-sized one), then the bad length.
		good := make([]byte, 42)
		copy(good, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		copy(good[6:], guestMAC)
		_ = binary.Write(&frame, binary.BigEndian, uint32(len(good)))
		frame.Write(good)
		_ = binary.Write(&frame, binary.BigEndian, size)
		if _, err := guest.Write(frame.Bytes()); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, errFrameTooLong) {
			t.Fatalf("length %d: Attach = %v, want errFrameTooLong", size, err)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no MAC":            {},
		"gateway outside":   {GuestMAC: guestMAC, Subnet: DefaultSubnet, GatewayIP: netip.MustParseAddr("10.0.0.1"), GuestIP: DefaultGuestIP},
		"guest is gateway":  {GuestMAC: guestMAC, Subnet: DefaultSubnet, GatewayIP: DefaultGatewayIP, GuestIP: DefaultGatewayIP},
		"IPv6 subnet":       {GuestMAC: guestMAC, Subnet: netip.MustParsePrefix("fd00::/64"), GatewayIP: netip.MustParseAddr("fd00::1"), GuestIP: netip.MustParseAddr("fd00::2")},
		"MTU out of range":  {GuestMAC: guestMAC, MTU: 100},
		"MTU out of range2": {GuestMAC: guestMAC, MTU: 70000},
	} {
		if n, err := New(cfg); err == nil {
			n.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// synFrame is a TCP SYN from the guest's address to dst, as a hostile guest could write with a
// raw socket (a Linux guest routes 127/8 to its own loopback, so the Go guest cannot send it).
func synFrame(srcPort uint16, dst netip.AddrPort) []byte {
	b := make([]byte, 4+header.EthernetMinimumSize+header.IPv4MinimumSize+header.TCPMinimumSize)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	eth := header.Ethernet(b[4:])
	eth.Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(guestMAC), DstAddr: tcpip.LinkAddress(DefaultGatewayMAC), Type: header.IPv4ProtocolNumber})
	src, dstA := tcpip.AddrFrom4(DefaultGuestIP.As4()), tcpip.AddrFrom4(dst.Addr().As4())
	ip := header.IPv4(eth[header.EthernetMinimumSize:])
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(ip)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber), SrcAddr: src, DstAddr: dstA})
	ip.SetChecksum(^ip.CalculateChecksum())
	tcph := header.TCP(ip[header.IPv4MinimumSize:])
	tcph.Encode(&header.TCPFields{SrcPort: srcPort, DstPort: dst.Port(), SeqNum: 1, DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagSyn, WindowSize: 65535})
	tcph.SetChecksum(^tcph.CalculateChecksum(header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dstA, header.TCPMinimumSize)))
	return b
}

// answerARP answers the gateway's question for the guest's address, as the guest's kernel would.
func answerARP(t testing.TB, c net.Conn, req header.ARP) {
	t.Helper()
	if !req.IsValid() || req.Op() != header.ARPRequest || netip.AddrFrom4([4]byte(req.ProtocolAddressTarget())) != DefaultGuestIP {
		return
	}
	b := make([]byte, 4+header.EthernetMinimumSize+header.ARPSize)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	header.Ethernet(b[4:]).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(guestMAC), DstAddr: tcpip.LinkAddress(req.HardwareAddressSender()), Type: header.ARPProtocolNumber})
	a := header.ARP(b[4+header.EthernetMinimumSize:])
	a.SetIPv4OverEthernet()
	a.SetOp(header.ARPReply)
	copy(a.HardwareAddressSender(), guestMAC)
	copy(a.ProtocolAddressSender(), DefaultGuestIP.AsSlice())
	copy(a.HardwareAddressTarget(), req.HardwareAddressSender())
	copy(a.ProtocolAddressTarget(), req.ProtocolAddressSender())
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// readTCPReply reads frames from c until a TCP segment to srcPort arrives, returning its flags.
func readTCPReply(t testing.TB, c net.Conn, srcPort uint16) header.TCPFlags {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	for {
		var size [4]byte
		if _, err := io.ReadFull(c, size[:]); err != nil {
			t.Fatalf("no reply to port %d: %v", srcPort, err)
		}
		f := make([]byte, binary.BigEndian.Uint32(size[:]))
		if _, err := io.ReadFull(c, f); err != nil {
			t.Fatal(err)
		}
		eth := header.Ethernet(f)
		if eth.Type() == header.ARPProtocolNumber {
			answerARP(t, c, header.ARP(f[header.EthernetMinimumSize:]))
			continue
		}
		if eth.Type() != header.IPv4ProtocolNumber {
			continue
		}
		ip := header.IPv4(f[header.EthernetMinimumSize:])
		if ip.TransportProtocol() != header.TCPProtocolNumber {
			continue
		}
		if tcph := header.TCP(ip.Payload()); tcph.DestinationPort() == srcPort {
			return tcph.Flags()
		}
	}
}

// TestForwarderRefusesRawFrames sends SYNs a Linux guest would only send with a raw socket:
// loopback, unspecified, broadcast, multicast, and denied unicast. None is dialed; an allowed
// destination written the same way is dialed (the frames are well-formed).
func TestForwarderRefusesRawFrames(t *testing.T) {
	env, inChild := netns.Run(t)
	if !inChild {
		return
	}
	outside := netns.Listen(t, env.Outside, "tcp", netip.AddrPortFrom(env.OutsideAddr, 7777).String())
	go echo(outside)
	lo, err := net.Listen("tcp", "127.0.0.1:7778")
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	go echo(lo)
	dials := &dialLog{}
	n, err := New(Config{GuestMAC: guestMAC, Policy: Policy{Allow: []netip.Prefix{netns.Prefix}}, Dial: dials.dial})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	host, guest := socketpair(t)
	go func() { _ = n.Attach(ctx, host) }()

	for i, dst := range []string{"169.254.169.254:80", "192.168.127.1:22", "10.232.0.9:80"} {
		port := uint16(40000 + i)
		if _, err := guest.Write(synFrame(port, netip.MustParseAddrPort(dst))); err != nil {
			t.Fatal(err)
		}
		if f := readTCPReply(t, guest, port); f&header.TCPFlagRst == 0 {
			t.Fatalf("SYN to %s answered with %s, want RST", dst, f)
		}
	}
	// Loopback, unspecified, broadcast and multicast destinations the stack drops as martians
	// without an answer; a later allowed SYN is answered, and by then they were handled.
	for i, dst := range []string{"127.0.0.1:7778", "127.9.9.9:7778", "0.0.0.0:7778", "255.255.255.255:7778", "224.0.0.1:7778", "10.231.0.255:7777"} {
		if _, err := guest.Write(synFrame(uint16(41000+i), netip.MustParseAddrPort(dst))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := guest.Write(synFrame(42000, netip.AddrPortFrom(env.OutsideAddr, 7777))); err != nil {
		t.Fatal(err)
	}
	if f := readTCPReply(t, guest, 42000); f&header.TCPFlagSyn == 0 || f&header.TCPFlagAck == 0 {
		t.Fatalf("SYN to the allowed outside host answered with %s, want SYN-ACK", f)
	}
	if got, want := dials.list(), []string{netip.AddrPortFrom(env.OutsideAddr, 7777).String()}; !slices.Equal(got, want) {
		t.Fatalf("vmd dialed %v, want only %v", got, want)
	}
}

// TestForwarderConnectionCap: with MaxConns open connections through the forwarder, the next
// one is refused without a dial; closing one makes room again.
func TestForwarderConnectionCap(t *testing.T) {
	env, inChild := netns.Run(t)
	if !inChild {
		return
	}
	outside := netns.Listen(t, env.Outside, "tcp", netip.AddrPortFrom(env.OutsideAddr, 7777).String())
	go echo(outside)
	dials := &dialLog{}
	n, err := New(Config{GuestMAC: guestMAC, Policy: Policy{Allow: []netip.Prefix{netns.Prefix}}, Dial: dials.dial, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g := newTestGuest(t)
	g.link(t, ctx, n)
	g.configure(t, DefaultGuestIP)
	dst := netip.AddrPortFrom(env.OutsideAddr, 7777)
	open := func() net.Conn {
		c, err := g.dial(ctx, dst)
		if err != nil {
			t.Fatalf("guest → %s: %v", dst, err)
		}
		// One byte echoed: the forwarded connection is up end to end.
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := open(), open()
	defer b.Close()
	if c, err := g.dial(ctx, dst); err == nil {
		c.Close()
		t.Fatal("a third connection got through a cap of 2")
	} else if !strings.Contains(err.Error(), "refused") {
		t.Fatalf("third connection: %v, want refused", err)
	}
	if got := len(dials.list()); got != 2 {
		t.Fatalf("%d dials, want 2 (the refused one is not dialed)", got)
	}
	a.Close()
	// The slot frees when the forwarder sees both directions end.
	testutil.Eventually(t, 10*time.Second, "a free connection slot", func() bool { return len(n.sem) < 2 })
	open().Close()
}
