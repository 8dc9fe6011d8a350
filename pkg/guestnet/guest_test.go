package guestnet

import (
	"context"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containers/gvisor-tap-vsock/pkg/tap"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/vmdhq/vmd/internal/testutil"
)

var guestMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

// testGuest is a fake guest BELOW the part under test: a second gvisor stack that speaks QEMU's
// stream framing (4-byte length + Ethernet frame) on its end of a socketpair (with the same
// link code), the way QEMU's `-netdev stream` does for a real virtio-net guest. Everything above it (switch, DHCP, DNS,
// policy, forwarder, DialGuest) is the real Network. TestQEMUGuest boots a real guest.
type testGuest struct {
	s    *stack.Stack
	l    *link
	once sync.Once
	rx   sync.WaitGroup // the receive loop, which delivers into s
}

func newTestGuest(t testing.TB) *testGuest { return newTestGuestMTU(t, defaultMTU) }

func newTestGuestMTU(t testing.TB, mtu int) *testGuest {
	t.Helper()
	ep, err := tap.NewLinkEndpoint(false, uint32(mtu), guestMAC.String(), DefaultGuestIP.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := &link{local: guestMAC, peer: DefaultGatewayMAC, deliver: ep.DeliverNetworkPacket}
	ep.Connect(l)
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	if err := s.CreateNIC(1, ep); err != nil {
		t.Fatal(err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: 1}})
	g := &testGuest{s: s, l: l}
	t.Cleanup(g.close)
	return g
}

func (g *testGuest) close() {
	g.once.Do(func() {
		g.l.set(nil)
		g.rx.Wait()
		g.s.Close()
		g.s.Wait()
	})
}

// configure gives the guest its address and a default route through the gateway.
func (g *testGuest) configure(t testing.TB, ip netip.Addr) {
	t.Helper()
	if err := g.s.AddProtocolAddress(1, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4(ip.As4()), PrefixLen: DefaultSubnet.Bits()},
	}, stack.AddressProperties{}); err != nil {
		t.Fatal(err)
	}
	sub, _ := tcpip.NewSubnet(tcpip.AddrFrom4(DefaultSubnet.Addr().As4()), tcpip.MaskFromBytes(net.CIDRMask(DefaultSubnet.Bits(), 32)))
	g.s.SetRouteTable([]tcpip.Route{
		{Destination: sub, NIC: 1},
		{Destination: header.IPv4EmptySubnet, Gateway: tcpip.AddrFrom4(DefaultGatewayIP.As4()), NIC: 1},
	})
}

// link connects the guest to n through a fresh socketpair, serving until ctx ends; it returns
// the host end's Attach result channel and the guest end.
func (g *testGuest) link(t testing.TB, ctx context.Context, n *Network) (attached <-chan error, guestEnd net.Conn) {
	t.Helper()
	host, guest := socketpair(t)
	done := make(chan error, 1)
	go func() { done <- n.Attach(ctx, host) }()
	g.l.set(guest)
	g.rx.Add(1)
	go func() { defer g.rx.Done(); _ = g.l.receive(guest); guest.Close() }()
	return done, guest
}

func (g *testGuest) dial(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	return gonet.DialContextTCP(ctx, g.s, tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(dst.Addr().As4()), Port: dst.Port()}, ipv4.ProtocolNumber)
}

func (g *testGuest) listen(t testing.TB, port uint16) net.Listener {
	t.Helper()
	ln, err := gonet.ListenTCP(g.s, tcpip.FullAddress{NIC: 1, Port: port}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// dhcp runs DISCOVER/OFFER/REQUEST/ACK from 0.0.0.0:68 to the broadcast address, as udhcpc
// does, and returns the ACK.
func (g *testGuest) dhcp(t testing.TB, ctx context.Context) *dhcpv4.DHCPv4 {
	t.Helper()
	any := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{Address: header.IPv4Any}}
	if err := g.s.AddProtocolAddress(1, any, stack.AddressProperties{}); err != nil {
		t.Fatal(err)
	}
	defer g.s.RemoveAddress(1, header.IPv4Any)
	var wq waiter.Queue
	ep, terr := g.s.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		t.Fatal(terr)
	}
	ep.SocketOptions().SetBroadcast(true)
	if terr := ep.Bind(tcpip.FullAddress{NIC: 1, Port: 68}); terr != nil {
		t.Fatal(terr)
	}
	conn := gonet.NewUDPConn(&wq, ep)
	defer conn.Close()
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}
	exchange := func(m *dhcpv4.DHCPv4, want dhcpv4.MessageType) *dhcpv4.DHCPv4 {
		for {
			if _, err := conn.WriteTo(m.ToBytes(), bcast); err != nil {
				t.Fatalf("dhcp send: %v", err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(time.Second))
			buf := make([]byte, 1500)
			n, _, err := conn.ReadFrom(buf)
			if ctx.Err() != nil {
				t.Fatalf("dhcp: no %s before the deadline", want)
			}
			if err != nil {
				continue // lost while the link came up: send again, as a DHCP client does
			}
			r, err := dhcpv4.FromBytes(buf[:n])
			if err != nil {
				t.Fatalf("dhcp reply: %v", err)
			}
			if r.TransactionID == m.TransactionID && r.MessageType() == want {
				return r
			}
		}
	}
	disc, err := dhcpv4.NewDiscovery(guestMAC)
	if err != nil {
		t.Fatal(err)
	}
	offer := exchange(disc, dhcpv4.MessageTypeOffer)
	req, err := dhcpv4.NewRequestFromOffer(offer)
	if err != nil {
		t.Fatal(err)
	}
	return exchange(req, dhcpv4.MessageTypeAck)
}

// socketpair returns the two ends of a unix stream socketpair, like the one QEMU's stream
// netdev accepts.
func socketpair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int, name string) net.Conn {
		f := os.NewFile(uintptr(fd), name)
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	return conn(fds[0], "host"), conn(fds[1], "guest")
}

// noLeakedGoroutines waits until the process is back to the goroutine count it had before the
// test built anything, or fails with a dump of every goroutine.
func noLeakedGoroutines(t testing.TB, baseline int) {
	t.Helper()
	if !testutil.WaitFor(10*time.Second, func() bool { return runtime.NumGoroutine() <= baseline }) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%d goroutines, %d before the test:\n%s", runtime.NumGoroutine(), baseline, buf)
	}
}
