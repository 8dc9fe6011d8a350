package netns

import (
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// The child sees only loopback and its veth, and reaches the outside host's listener over it.
func TestRunIsolates(t *testing.T) {
	env, inChild := Run(t)
	if !inChild {
		return
	}
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	if len(ifs) != 2 || ifs[0].Name != "lo" || !strings.HasPrefix(ifs[1].Name, "vi") {
		t.Fatalf("interfaces in the child: %v, want lo and the veth", names)
	}
	ln := Listen(t, env.Outside, "tcp", netip.AddrPortFrom(env.OutsideAddr, 7000).String())
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = io.WriteString(c, "outside")
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", netip.AddrPortFrom(env.OutsideAddr, 7000).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, _ := io.ReadAll(c)
	if string(b) != "outside" {
		t.Fatalf("read %q from the outside host", b)
	}
	// The listener lives in the outside namespace, not in the child's.
	if l, err := net.Listen("tcp", netip.AddrPortFrom(env.OutsideAddr, 7001).String()); err == nil {
		l.Close()
		t.Fatal("the outside address is bindable in the child's namespace")
	}
}
