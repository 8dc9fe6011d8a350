package guestnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// ErrDenied is returned (wrapped, with the reason) when the egress policy refuses a destination.
var ErrDenied = errors.New("destination denied by guest egress policy")

// Policy is the guest egress rule. Every outbound connection a guest opens goes through
// Permit before vmd dials anything on the guest's behalf.
type Policy struct {
	// Allow lists operator-allowed CIDRs (vmd serve --guest-egress-allow): a private or
	// special-purpose destination inside one of them is permitted. Loopback, link-local,
	// multicast, the host's own addresses and the guest's own subnet are denied even there.
	Allow []netip.Prefix

	// internal is the guest's own subnet, set by New: the gateway's address is the stack's own
	// and must never be dialed on the host, whatever Allow says.
	internal []netip.Prefix
	// hostAddrs lists the host's own addresses with their prefix lengths; nil means every local
	// interface address, re-read on each call so an address added after start is denied too.
	hostAddrs func() ([]netip.Prefix, error)
}

// alwaysDenied are never reachable from a guest, whatever the operator allows.
var alwaysDenied = []struct {
	p      netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("0.0.0.0/32"), "unspecified"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	// IPv6 forms that carry an IPv4 address the host may route to itself (IPv4-mapped
	// addresses are unmapped before any check, so ::ffff:127.0.0.1 is loopback above).
	{netip.MustParsePrefix("::/96"), "IPv4-compatible"},
}

// specialPurpose are private, shared or reserved ranges (RFC 6890 and friends): denied
// unless inside an operator-allowed CIDR.
var specialPurpose = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("192.88.99.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fec0::/10"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2001::/32"),      // Teredo
	netip.MustParsePrefix("2002::/16"),      // 6to4
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64
	netip.MustParsePrefix("64:ff9b:1::/48"), // local NAT64
}

// Permit reports whether a guest may open a connection to dst. It returns nil to allow, or an
// error wrapping ErrDenied that names the reason. This is the only egress rule: the TCP forwarder
// calls it before every dial, and dials the literal address it checked.
func (p Policy) Permit(dst netip.Addr) error {
	if !dst.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrDenied)
	}
	// ::ffff:a.b.c.d reaches a.b.c.d on a dual-stack host: judge the IPv4 address. A zone
	// only names an interface; the address is what is reached.
	dst = dst.Unmap().WithZone("")
	for _, d := range alwaysDenied {
		if d.p.Contains(dst) {
			return fmt.Errorf("%w: %s is %s", ErrDenied, dst, d.reason)
		}
	}
	for _, in := range p.internal {
		if in.Contains(dst) {
			return fmt.Errorf("%w: %s is on the guest's own network", ErrDenied, dst)
		}
	}
	own, err := p.ownAddrs()
	if err != nil {
		// Without the host's address list the rule cannot be applied: fail closed.
		return fmt.Errorf("%w: cannot list the host's addresses: %v", ErrDenied, err)
	}
	for _, a := range own {
		if a.Addr().Unmap().WithZone("") == dst {
			return fmt.Errorf("%w: %s is the host's own address", ErrDenied, dst)
		}
		if isBroadcast(a, dst) {
			return fmt.Errorf("%w: %s is the broadcast address of the host's network %s", ErrDenied, dst, a.Masked())
		}
	}
	for _, sp := range specialPurpose {
		if !sp.Contains(dst) {
			continue
		}
		for _, a := range p.Allow {
			if isBroadcast(a, dst) {
				return fmt.Errorf("%w: %s is the broadcast address of %s", ErrDenied, dst, a.Masked())
			}
			if a.Masked().Contains(dst) {
				return nil
			}
		}
		return fmt.Errorf("%w: %s is in %s, not in an allowed range", ErrDenied, dst, sp)
	}
	return nil
}

// isBroadcast reports whether dst is the directed broadcast address (all host bits set) of the
// IPv4 network p, for networks that have one (/30 and shorter).
func isBroadcast(p netip.Prefix, dst netip.Addr) bool {
	if !p.Addr().Unmap().Is4() || !dst.Is4() || p.Bits() > 30 {
		return false
	}
	n := netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked()
	if !n.Contains(dst) {
		return false
	}
	a := dst.As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	host := uint32(1)<<(32-n.Bits()) - 1
	return v&host == host
}

func (p Policy) ownAddrs() ([]netip.Prefix, error) {
	if p.hostAddrs != nil {
		return p.hostAddrs()
	}
	return interfaceAddrs()
}

// interfaceAddrs lists every address configured on a local interface, with its prefix length.
func interfaceAddrs() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list interface addresses: %w", err)
	}
	out := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				ones, _ := n.Mask.Size()
				if ip.Is4In6() {
					ip = ip.Unmap()
				}
				out = append(out, netip.PrefixFrom(ip, ones))
			}
		}
	}
	return out, nil
}
