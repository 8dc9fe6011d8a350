// Package guestnet is one guest's userspace network: a gvisor netstack per VM, attached to
// QEMU's `-netdev stream` socket, with a DHCP server, a DNS forwarder on the gateway, and a TCP
// forwarder that dials out as vmd only where Policy.Permit allows. Nothing here binds a host
// port: vmd reaches a guest's port by dialing inside the stack (DialGuest).
package guestnet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containers/gvisor-tap-vsock/pkg/services/dhcp"
	"github.com/containers/gvisor-tap-vsock/pkg/services/dns"
	"github.com/containers/gvisor-tap-vsock/pkg/tap"
	"github.com/containers/gvisor-tap-vsock/pkg/types"
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
)

// Errors DialGuest and Attach return; callers map them to user-facing errors.
var (
	ErrNoLease     = errors.New("guest has no network address yet")
	ErrPortClosed  = errors.New("nothing listens on the guest port")
	ErrUnreachable = errors.New("guest does not answer on its network")
	ErrInvalidPort = errors.New("port must be between 1 and 65535")
	ErrClosed      = errors.New("guest network is closed")
)

// Defaults: every VM gets the same subnet, because each VM has its own stack and the subnet is
// never routed anywhere. 192.168.127.0/24 (gvisor-tap-vsock's habit) rather than QEMU's
// 10.0.2.0/24: operators often allow parts of 10/8 for guests, and an allowed range that also
// contains the guest's own network is confusing to read.
var (
	DefaultSubnet     = netip.MustParsePrefix("192.168.127.0/24")
	DefaultGatewayIP  = netip.MustParseAddr("192.168.127.1")
	DefaultGuestIP    = netip.MustParseAddr("192.168.127.2")
	DefaultGatewayMAC = net.HardwareAddr{0x02, 0x00, 0x00, 0x76, 0x6d, 0x01} // locally administered
)

const (
	nicID              = 1
	defaultMTU         = 1500
	defaultMaxConns    = 256
	defaultDialTimeout = 10 * time.Second
	// A frame longer than this from QEMU is a broken or hostile peer.
	maxFrame = 65535 + header.EthernetMinimumSize
)

// Resolver answers the DNS questions the gateway forwards; *net.Resolver fits.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupCNAME(ctx context.Context, host string) (string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupNS(ctx context.Context, name string) ([]*net.NS, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Config describes one guest's network. Zero fields take the defaults above.
type Config struct {
	Subnet     netip.Prefix
	GatewayIP  netip.Addr
	GatewayMAC net.HardwareAddr
	GuestIP    netip.Addr
	GuestMAC   net.HardwareAddr // required: the MAC given to QEMU's virtio-net device
	MTU        int
	Policy     Policy
	Resolver   Resolver // default: the host's resolver
	// Dial opens the host-side connection for a permitted guest connection; default net.Dialer.
	// It is only ever called with a literal IP address that Policy.Permit accepted.
	Dial        func(ctx context.Context, network, address string) (net.Conn, error)
	DialTimeout time.Duration // default 10 s
	MaxConns    int           // concurrent outbound connections, default 256
	Log         *slog.Logger
}

// Network is one guest's network stack.
type Network struct {
	cfg     Config
	policy  Policy
	log     *slog.Logger
	stack   *stack.Stack
	ep      *tap.LinkEndpoint
	link    *link
	dhcp    *dhcp.Server
	dnsUDP  *gonet.UDPConn
	dnsTCP  *gonet.TCPListener
	sem     chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	guest   tcpip.Address
	gateway tcpip.Address
	leased  atomic.Bool

	mu       sync.Mutex
	closed   bool
	attached net.Conn
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup // services, forwarded connections
	links    sync.WaitGroup // Attach calls: they deliver into the stack, so end before it closes
}

// New builds the stack and starts its DHCP and DNS services. It binds nothing on the host.
func New(cfg Config) (*Network, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	routeLogrus()
	ctx, cancel := context.WithCancel(context.Background())
	n := &Network{
		cfg:     cfg,
		log:     cfg.Log,
		sem:     make(chan struct{}, cfg.MaxConns),
		ctx:     ctx,
		cancel:  cancel,
		guest:   tcpip.AddrFrom4(cfg.GuestIP.As4()),
		gateway: tcpip.AddrFrom4(cfg.GatewayIP.As4()),
		conns:   make(map[net.Conn]struct{}),
	}
	n.policy = cfg.Policy
	n.policy.internal = append(append([]netip.Prefix(nil), cfg.Policy.internal...), cfg.Subnet.Masked())

	ep, err := tap.NewLinkEndpoint(false, uint32(cfg.MTU), cfg.GatewayMAC.String(), cfg.GatewayIP.String(), nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("guest network link: %w", err)
	}
	n.ep = ep
	n.link = &link{local: cfg.GatewayMAC, peer: cfg.GuestMAC, deliver: n.fromGuest}
	ep.Connect(n.link)

	if err := n.buildStack(ep); err != nil {
		cancel()
		n.stack.Close()
		n.stack.Wait()
		return nil, err
	}
	if err := n.startServices(); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

func (c *Config) defaults() error {
	if len(c.GuestMAC) != 6 {
		return fmt.Errorf("guest network: guest MAC %q is not a 6-byte MAC", c.GuestMAC)
	}
	if !c.Subnet.IsValid() {
		c.Subnet, c.GatewayIP, c.GuestIP = DefaultSubnet, DefaultGatewayIP, DefaultGuestIP
	}
	if !c.Subnet.Addr().Is4() || !c.GatewayIP.Is4() || !c.GuestIP.Is4() ||
		!c.Subnet.Contains(c.GatewayIP) || !c.Subnet.Contains(c.GuestIP) || c.GatewayIP == c.GuestIP {
		return fmt.Errorf("guest network: gateway %s and guest %s must be distinct IPv4 addresses in %s", c.GatewayIP, c.GuestIP, c.Subnet)
	}
	if c.GatewayMAC == nil {
		c.GatewayMAC = DefaultGatewayMAC
	}
	if c.MTU == 0 {
		c.MTU = defaultMTU
	}
	if c.MTU < 576 || c.MTU > 65535 {
		return fmt.Errorf("guest network: MTU %d out of range", c.MTU)
	}
	if c.Resolver == nil {
		c.Resolver = &net.Resolver{}
	}
	if c.Dial == nil {
		c.Dial = (&net.Dialer{}).DialContext
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = defaultDialTimeout
	}
	if c.MaxConns == 0 {
		c.MaxConns = defaultMaxConns
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return nil
}

func (n *Network) buildStack(ep stack.LinkEndpoint) error {
	// IPv4 and ARP only: the guest gets no IPv6 route, so no IPv6 path needs a rule. No ICMP
	// transport either; the guard drops ICMP that is not for the gateway.
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	n.stack = s
	if err := s.CreateNIC(nicID, ep); err != nil {
		return fmt.Errorf("guest network nic: %s", err)
	}
	if err := s.AddProtocolAddress(nicID, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: n.gateway.WithPrefix(),
	}, stack.AddressProperties{}); err != nil {
		return fmt.Errorf("guest network gateway address: %s", err)
	}
	// Promiscuous + spoofing: the stack accepts a guest connection to any address and answers
	// as that address, which is what lets the forwarder see (and judge) every destination.
	if err := s.SetSpoofing(nicID, true); err != nil {
		return fmt.Errorf("guest network spoofing: %s", err)
	}
	if err := s.SetPromiscuousMode(nicID, true); err != nil {
		return fmt.Errorf("guest network promiscuous: %s", err)
	}
	sub, err := tcpip.NewSubnet(tcpip.AddrFrom4(n.cfg.Subnet.Masked().Addr().As4()),
		tcpip.MaskFromBytes(net.CIDRMask(n.cfg.Subnet.Bits(), 32)))
	if err != nil {
		return fmt.Errorf("guest network subnet: %w", err)
	}
	// Only the guest's subnet is routed: the stack itself can only ever send to the guest.
	s.SetRouteTable([]tcpip.Route{{Destination: sub, NIC: nicID}})

	fwd := tcp.NewForwarder(s, 0, n.cfg.MaxConns, n.forwardTCP)
	s.SetTransportProtocolHandler(tcp.ProtocolNumber, fwd.HandlePacket)
	// UDP that no service is bound to (everything but DHCP and DNS on the gateway) is dropped.
	s.SetTransportProtocolHandler(udp.ProtocolNumber, func(stack.TransportEndpointID, *stack.PacketBuffer) bool { return true })
	return nil
}

func (n *Network) startServices() error {
	pool := tap.NewIPPool(&net.IPNet{IP: n.cfg.Subnet.Masked().Addr().AsSlice(), Mask: net.CIDRMask(n.cfg.Subnet.Bits(), 32)})
	pool.Reserve(n.cfg.GatewayIP.AsSlice(), n.cfg.GatewayMAC.String())
	pool.Reserve(n.cfg.GuestIP.AsSlice(), n.cfg.GuestMAC.String())
	tcfg := &types.Configuration{
		Subnet:    n.cfg.Subnet.Masked().String(),
		GatewayIP: n.cfg.GatewayIP.String(),
		MTU:       n.cfg.MTU,
	}
	d, err := dhcp.New(tcfg, n.stack, pool)
	if err != nil {
		return fmt.Errorf("guest network dhcp: %w", err)
	}
	n.dhcp = d

	gw := tcpip.FullAddress{NIC: nicID, Addr: n.gateway, Port: 53}
	if n.dnsUDP, err = gonet.DialUDP(n.stack, &gw, nil, ipv4.ProtocolNumber); err != nil {
		return fmt.Errorf("guest network dns: %w", err)
	}
	if n.dnsTCP, err = gonet.ListenTCP(n.stack, gw, ipv4.ProtocolNumber); err != nil {
		return fmt.Errorf("guest network dns: %w", err)
	}
	srv, err := dns.NewWithUpstreamResolver(n.dnsUDP, n.dnsTCP, nil, n.cfg.Resolver)
	if err != nil {
		return fmt.Errorf("guest network dns: %w", err)
	}
	// Each returns when Close closes its socket.
	n.wg.Add(3)
	go func() { defer n.wg.Done(); _ = d.Serve() }()
	go func() { defer n.wg.Done(); _ = srv.Serve() }()
	go func() { defer n.wg.Done(); _ = srv.ServeTCP() }()
	return nil
}

// Lease returns the guest's address once the guest asked for it by DHCP or used it (sent from
// it, or answered the gateway's ARP probe after vmd reattached to a running guest).
func (n *Network) Lease() (netip.Addr, bool) {
	if !n.leased.Load() {
		return netip.Addr{}, false
	}
	return n.cfg.GuestIP, true
}

// Attach serves one QEMU stream connection (4-byte big-endian length, then an Ethernet frame)
// until it ends, ctx is cancelled or the network is closed; the caller reconnects to QEMU's
// socket and calls Attach again. A new Attach replaces a connection still attached.
func (n *Network) Attach(ctx context.Context, conn net.Conn) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		conn.Close()
		return ErrClosed
	}
	before := n.attached
	n.attached = conn
	n.links.Add(1)
	n.mu.Unlock()
	defer n.links.Done()
	// Close the connection before first: a write blocked on it holds the link's lock.
	if before != nil {
		before.Close()
	}
	n.link.set(conn)

	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	// A guest that kept its address across a vmd restart is silent until asked: probe it so
	// Lease becomes known.
	if !n.leased.Load() {
		_ = n.stack.GetLinkAddress(nicID, n.guest, n.gateway, ipv4.ProtocolNumber, func(stack.LinkResolutionResult) {})
	}
	err := n.link.receive(conn)
	n.link.unset(conn)
	conn.Close()

	n.mu.Lock()
	if n.attached == conn {
		n.attached = nil
	}
	closed := n.closed
	n.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return fmt.Errorf("guest link: %w", err)
}

// DialGuest opens a TCP connection to the guest's port inside the stack; nothing is bound on
// the host.
func (n *Network) DialGuest(ctx context.Context, port int) (net.Conn, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("dial guest port %d: %w", port, ErrInvalidPort)
	}
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if !n.leased.Load() {
		return nil, fmt.Errorf("dial guest port %d: %w", port, ErrNoLease)
	}
	var wq waiter.Queue
	ep, terr := n.stack.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		return nil, fmt.Errorf("dial guest port %d: %s", port, terr)
	}
	entry, ready := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)
	terr = ep.Connect(tcpip.FullAddress{NIC: nicID, Addr: n.guest, Port: uint16(port)})
	if _, ok := terr.(*tcpip.ErrConnectStarted); ok {
		select {
		case <-ctx.Done():
			ep.Close()
			return nil, fmt.Errorf("dial guest port %d: %w", port, ctx.Err())
		case <-n.ctx.Done():
			ep.Close()
			return nil, ErrClosed
		case <-ready:
		}
		terr = ep.LastError()
	}
	if terr != nil {
		ep.Close()
		switch terr.(type) {
		case *tcpip.ErrConnectionRefused:
			return nil, fmt.Errorf("dial guest port %d: %w", port, ErrPortClosed)
		case *tcpip.ErrHostUnreachable, *tcpip.ErrNetworkUnreachable, *tcpip.ErrTimeout:
			return nil, fmt.Errorf("dial guest port %d: %w", port, ErrUnreachable)
		}
		return nil, fmt.Errorf("dial guest port %d: %s", port, terr)
	}
	return gonet.NewTCPConn(&wq, ep), nil
}

// Close stops the services, closes the QEMU connection and every forwarded connection, and
// waits for all of the network's goroutines.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	if n.attached != nil {
		n.attached.Close()
	}
	for c := range n.conns {
		c.Close()
	}
	n.mu.Unlock()
	n.cancel()
	n.links.Wait()
	if n.dhcp != nil {
		_ = n.dhcp.Underlying.Close()
	}
	if n.dnsUDP != nil {
		_ = n.dnsUDP.Close()
	}
	if n.dnsTCP != nil {
		_ = n.dnsTCP.Close()
	}
	n.stack.Close()
	n.wg.Wait()
	n.stack.Wait()
	return nil
}

// fromGuest sits between the link and the stack: it drops what the guest may not send the
// gateway, and notices the guest's address.
func (n *Network) fromGuest(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	switch proto {
	case header.ARPProtocolNumber:
		if b, ok := pkt.Data().PullUp(header.ARPSize); ok {
			if a := header.ARP(b); a.IsValid() && tcpip.AddrFromSlice(a.ProtocolAddressSender()) == n.guest {
				n.leased.Store(true)
			}
		}
	case header.IPv4ProtocolNumber:
		b, ok := pkt.Data().PullUp(header.IPv4MinimumSize)
		if !ok {
			return
		}
		ip := header.IPv4(b)
		switch src := ip.SourceAddress(); src {
		case n.guest:
			n.leased.Store(true)
		case header.IPv4Any: // DHCP before the guest has an address
			if n.isLeaseRequest(ip, pkt) {
				n.leased.Store(true)
			}
		default:
			return // only the guest's own address may leave the guest
		}
		if ip.TransportProtocol() == header.ICMPv4ProtocolNumber && ip.DestinationAddress() != n.gateway {
			return // no ICMP beyond the gateway (the stack would answer as any address)
		}
	default:
		return // IPv6 and anything else: no route
	}
	n.ep.DeliverNetworkPacket(proto, pkt)
}

// isLeaseRequest reports whether pkt is the guest's DHCPREQUEST: the server ACKs it with the
// guest's reserved address, and a guest may say nothing more until someone talks to it.
func (n *Network) isLeaseRequest(ip header.IPv4, pkt *stack.PacketBuffer) bool {
	if ip.TransportProtocol() != header.UDPProtocolNumber {
		return false
	}
	raw := pkt.Data().AsRange().ToSlice()
	hl := int(ip.HeaderLength())
	if len(raw) < hl+header.UDPMinimumSize {
		return false
	}
	if header.UDP(raw[hl:]).DestinationPort() != 67 {
		return false
	}
	m, err := dhcpv4.FromBytes(raw[hl+header.UDPMinimumSize:])
	return err == nil && m.MessageType() == dhcpv4.MessageTypeRequest && bytes.Equal(m.ClientHWAddr, n.cfg.GuestMAC)
}

// GuestMAC is the MAC of a VM's NIC, derived from its id so that it is stable across restarts
// and adoption: the driver's `-device virtio-net-pci,mac=` and Config.GuestMAC must agree, and
// this is the one place that says how. Locally administered (0x02 set), unicast.
func GuestMAC(vmID string) net.HardwareAddr {
	h := sha256.Sum256([]byte("vmd guest mac\x00" + vmID))
	return net.HardwareAddr{0x52, h[0], h[1], h[2], h[3], h[4]}
}
