package guestnet

import (
	"errors"
	"net/netip"
	"testing"
)

func TestPolicyPermit(t *testing.T) {
	pfx := netip.MustParsePrefix
	addr := netip.MustParseAddr
	// A host with an address inside a range the operator allows: the range opens, the host's
	// own address in it stays closed.
	host := func() ([]netip.Prefix, error) {
		return []netip.Prefix{pfx("127.0.0.1/8"), pfx("::1/128"), pfx("10.231.0.1/24"), pfx("203.0.113.7/24"), pfx("198.51.100.9/24"), pfx("2001:db8:1::5/64"), pfx("fe80::1/64")}, nil
	}
	open := Policy{hostAddrs: host}
	allowing := Policy{
		Allow: []netip.Prefix{pfx("10.231.0.0/24"), pfx("172.16.5.0/24"), pfx("192.168.0.0/16"), pfx("100.64.0.0/10"),
			pfx("fd00:1::/64"), pfx("169.254.0.0/16"), pfx("127.0.0.0/8"), pfx("224.0.0.0/4"), pfx("203.0.113.0/24")},
		internal:  []netip.Prefix{DefaultSubnet},
		hostAddrs: host,
	}

	cases := []struct {
		name  string
		p     Policy
		dst   string
		allow bool
	}{
		{"public v4", open, "93.184.215.14", true},
		{"public v6", open, "2606:4700::1111", true},
		{"public v4 with allow list", allowing, "8.8.8.8", true},
		{"loopback", open, "127.0.0.1", false},
		{"loopback other", open, "127.1.2.3", false},
		{"loopback even if allowed", allowing, "127.0.0.1", false},
		{"loopback v6", open, "::1", false},
		{"mapped loopback", open, "::ffff:127.0.0.1", false},
		{"mapped loopback allowed", allowing, "::ffff:127.0.0.1", false},
		{"IPv4-compatible loopback", open, "::127.0.0.1", false},
		{"unspecified v4", open, "0.0.0.0", false},
		{"unspecified v6", open, "::", false},
		{"this network", open, "0.1.2.3", false},
		{"metadata", open, "169.254.169.254", false},
		{"metadata even if allowed", allowing, "169.254.169.254", false},
		{"mapped metadata", open, "::ffff:169.254.169.254", false},
		{"link-local v6", open, "fe80::1", false},
		{"link-local v6 zone", open, "fe80::1%eth0", false},
		{"host own address", open, "203.0.113.7", false},
		{"host own address in allowed range", allowing, "10.231.0.1", false},
		{"host own documentation-range address allowed", allowing, "203.0.113.7", false},
		{"host own v6", open, "2001:db8:1::5", false},
		{"mapped host own", allowing, "::ffff:10.231.0.1", false},
		{"10/8", open, "10.1.2.3", false},
		{"10/8 allowed", allowing, "10.231.0.2", true},
		{"10/8 outside allowed /24", allowing, "10.231.1.2", false},
		{"broadcast of an allowed range", allowing, "10.231.0.255", false},
		{"network address of an allowed range", allowing, "10.231.0.0", true},
		{"broadcast of an allowed /16", allowing, "192.168.255.255", false},
		{"broadcast of the host's network", open, "198.51.100.255", false},
		{"broadcast of a public host network", Policy{hostAddrs: func() ([]netip.Prefix, error) { return []netip.Prefix{pfx("93.184.215.14/24")}, nil }}, "93.184.215.255", false},
		{"neighbour on a public host network", Policy{hostAddrs: func() ([]netip.Prefix, error) { return []netip.Prefix{pfx("93.184.215.14/24")}, nil }}, "93.184.215.20", true},
		{"mapped allowed", allowing, "::ffff:10.231.0.2", true},
		{"172.16/12", open, "172.16.5.9", false},
		{"172.16/12 allowed", allowing, "172.16.5.9", true},
		{"172.31 not allowed", allowing, "172.31.0.1", false},
		{"192.168/16", open, "192.168.1.1", false},
		{"192.168/16 allowed", allowing, "192.168.1.1", true},
		{"guest subnet stays closed", allowing, "192.168.127.1", false},
		{"guest itself", allowing, "192.168.127.2", false},
		{"100.64/10", open, "100.100.100.100", false},
		{"100.64/10 allowed", allowing, "100.100.100.100", true},
		{"benchmarking", open, "198.18.0.1", false},
		{"reserved 240/4", open, "240.0.0.1", false},
		{"broadcast", open, "255.255.255.255", false},
		{"multicast", open, "224.0.0.251", false},
		{"multicast even if allowed", allowing, "239.1.1.1", false},
		{"multicast v6", open, "ff02::1", false},
		{"ula", open, "fd00:1::5", false},
		{"ula allowed", allowing, "fd00:1::5", true},
		{"ula outside allowed", allowing, "fd00:2::5", false},
		{"nat64", open, "64:ff9b::a00:1", false},
		{"6to4", open, "2002:7f00:1::1", false},
		{"teredo", open, "2001:0:4136:e378::1", false},
		{"site-local", open, "fec0::1", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.p.Permit(addr(c.dst))
			if c.allow && err != nil {
				t.Fatalf("Permit(%s) = %v, want allowed", c.dst, err)
			}
			if !c.allow && !errors.Is(err, ErrDenied) {
				t.Fatalf("Permit(%s) = %v, want ErrDenied", c.dst, err)
			}
		})
	}
	if err := open.Permit(netip.Addr{}); !errors.Is(err, ErrDenied) {
		t.Fatalf("Permit(zero) = %v, want ErrDenied", err)
	}
}

// The real interface list: every address this machine has is denied, even when its whole
// range is allowed.
func TestPolicyDeniesRealInterfaceAddresses(t *testing.T) {
	own, err := interfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	if len(own) == 0 {
		t.Fatal("no interface addresses")
	}
	p := Policy{Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}}
	for _, a := range own {
		if err := p.Permit(a.Addr()); !errors.Is(err, ErrDenied) {
			t.Errorf("Permit(%s) = %v, want ErrDenied", a, err)
		}
	}
}

func TestPolicyFailsClosedWithoutAddressList(t *testing.T) {
	p := Policy{hostAddrs: func() ([]netip.Prefix, error) { return nil, errors.New("netlink down") }}
	if err := p.Permit(netip.MustParseAddr("93.184.215.14")); !errors.Is(err, ErrDenied) {
		t.Fatalf("Permit = %v, want ErrDenied", err)
	}
}

func TestGuestMAC(t *testing.T) {
	a, b := GuestMAC("01J0000000000000000000000A"), GuestMAC("01J0000000000000000000000B")
	if a.String() == b.String() {
		t.Fatalf("two VMs share MAC %s", a)
	}
	if GuestMAC("01J0000000000000000000000A").String() != a.String() {
		t.Fatal("GuestMAC is not stable")
	}
	if a[0]&0x01 != 0 || a[0]&0x02 == 0 {
		t.Fatalf("%s: want a locally administered unicast MAC", a)
	}
	n, err := New(Config{GuestMAC: a})
	if err != nil {
		t.Fatalf("New with GuestMAC: %v", err)
	}
	n.Close()
}
