package guestnet

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil/netns"
)

// tinyImage is the tiny template with virtio-net, udhcpc and dropbear (make image).
func tinyImage(t testing.TB) string {
	t.Helper()
	img, err := filepath.Abs("../../images/tiny.qcow2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(img); err != nil {
		t.Fatalf("the QEMU test needs the tiny image with a NIC (make image): %v", err)
	}
	return img
}

type qemuGuest struct {
	serial string
	sock   string
	exited chan struct{}
	stderr bytes.Buffer
}

// bootTiny starts the tiny image under TCG with its NIC on a `-netdev stream` socket QEMU
// listens on, exactly as the driver is to start it (see the report / docs/ARCHITECTURE.md).
func bootTiny(t testing.TB) *qemuGuest {
	t.Helper()
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", tinyImage(t), disk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	g := &qemuGuest{serial: filepath.Join(dir, "serial.log"), sock: filepath.Join(dir, "net.sock"), exited: make(chan struct{})}
	cmd := exec.Command("qemu-system-x86_64",
		"-nodefaults", "-no-user-config", "-machine", "q35", "-accel", "tcg", "-m", "256",
		"-display", "none",
		"-drive", "if=none,id=disk0,file="+disk+",format=qcow2",
		"-device", "virtio-blk-pci,drive=disk0,bootindex=0",
		"-chardev", "file,id=serial0,path="+g.serial, "-serial", "chardev:serial0",
		"-netdev", "stream,id=n0,server=on,addr.type=unix,addr.path="+g.sock,
		"-device", "virtio-net-pci,netdev=n0,mac="+guestMAC.String(),
	)
	cmd.Stderr = &g.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	go func() { _ = cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-g.exited
		if t.Failed() {
			b, _ := os.ReadFile(g.serial)
			t.Logf("qemu stderr:\n%s\nserial log:\n%s", g.stderr.String(), b)
		}
	})
	return g
}

func (g *qemuGuest) waitSerial(t testing.TB, line string, timeout time.Duration) {
	t.Helper()
	waitFor(t, "serial line "+line, timeout, func() bool {
		b, _ := os.ReadFile(g.serial)
		return bytes.Contains(b, []byte(line))
	})
}

// connect dials QEMU's netdev socket, waiting for QEMU to create it.
func (g *qemuGuest) connect(t testing.TB) net.Conn {
	t.Helper()
	var c net.Conn
	waitFor(t, "QEMU's netdev socket", 30*time.Second, func() bool {
		var err error
		c, err = net.Dial("unix", g.sock)
		return err == nil
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func sshBanner(t testing.TB, ctx context.Context, n *Network) string {
	t.Helper()
	c, err := n.DialGuest(ctx, 22)
	if err != nil {
		t.Fatalf("DialGuest(22): %v", err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read SSH banner: %v", err)
	}
	return strings.TrimSpace(line)
}

// TestQEMUGuest boots the real tiny guest on a Network, inside test namespaces: udhcpc gets
// the guest's address from our DHCP server, dropbear answers through DialGuest, and after the
// link drops and vmd reconnects to QEMU's socket the guest is still reachable at that address.
func TestQEMUGuest(t *testing.T) {
	_, inChild := netns.Run(t)
	if !inChild {
		return
	}
	n, err := New(Config{GuestMAC: guestMAC, Policy: Policy{Allow: []netip.Prefix{netns.Prefix}}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	g := bootTiny(t)
	done := make(chan error, 1)
	go func() { done <- n.Attach(ctx, g.connect(t)) }()

	g.waitSerial(t, "vmd-tiny: ip "+DefaultGuestIP.String(), 3*time.Minute)
	g.waitSerial(t, "vmd-tiny: hostkey ecdsa-sha2-nistp256 ", 2*time.Minute)
	if l, ok := n.Lease(); !ok || l != DefaultGuestIP {
		t.Fatalf("Lease = %s %v, want %s", l, ok, DefaultGuestIP)
	}
	if b := sshBanner(t, ctx, n); !strings.HasPrefix(b, "SSH-2.0-dropbear") {
		t.Fatalf("banner %q, want dropbear's", b)
	}
	if _, err := n.DialGuest(ctx, 2222); !errors.Is(err, ErrPortClosed) {
		t.Fatalf("DialGuest(2222) = %v, want ErrPortClosed", err)
	}

	// vmd restarts: the old Network closes (QEMU sees its client go and listens again), a new
	// one connects to the same socket; the guest keeps its address.
	n2, err := New(Config{GuestMAC: guestMAC, Policy: Policy{Allow: []netip.Prefix{netns.Prefix}}})
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	n.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Attach after Close = %v", err)
	}
	go func() { done <- n2.Attach(ctx, g.connect(t)) }()
	// A restarted vmd learns the address from the guest's answer to its ARP probe.
	waitFor(t, "the lease after a vmd restart", 30*time.Second, func() bool { _, ok := n2.Lease(); return ok })
	if b := sshBanner(t, ctx, n2); !strings.HasPrefix(b, "SSH-2.0-dropbear") {
		t.Fatalf("banner after reconnect %q, want dropbear's", b)
	}
}
