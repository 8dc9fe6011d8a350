package guestnet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/internal/testutil/netns"
)

// sshClient logs in as root through DialGuest(22) with the seed's key.
func sshClient(t testing.TB, ctx context.Context, n *Network, signer ssh.Signer) *ssh.Client {
	t.Helper()
	c, err := n.DialGuest(ctx, 22)
	if err != nil {
		t.Fatalf("DialGuest(22): %v", err)
	}
	cc, chans, reqs, err := ssh.NewClientConn(c, "guest:22", &ssh.ClientConfig{
		User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // a fresh test guest; the key is not the point here
		Timeout:         30 * time.Second,
	})
	if err != nil {
		t.Fatalf("ssh: %v", err)
	}
	return ssh.NewClient(cc, chans, reqs)
}

func run(c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return strings.TrimSpace(string(out)), err
}

func measureSSH(t testing.TB, c *ssh.Client) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("cat >/dev/null"); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 16<<20)
	start := time.Now()
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	t.Logf("real guest: 16 MiB over SSH through DialGuest in %s = %.1f MB/s", el, float64(len(data))/1e6/el.Seconds())

	s, err = c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, _ = s.StdinPipe()
	r, _ := s.StdoutPipe()
	if err := s.Start("cat"); err != nil {
		t.Fatal(err)
	}
	one := []byte{'x'}
	const rounds = 200
	start = time.Now()
	for i := 0; i < rounds; i++ {
		if _, err := w.Write(one); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, one); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("real guest: one-byte round trip over SSH through DialGuest: %s", time.Since(start)/rounds)
	w.Close()
}

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
// listens on, exactly as the driver is to start it (see the report / docs/ARCHITECTURE.md);
// extra is appended to QEMU's arguments.
func bootTiny(t testing.TB, seed map[string]string, extra ...string) *qemuGuest {
	t.Helper()
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", tinyImage(t), disk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	g := &qemuGuest{serial: filepath.Join(dir, "serial.log"), sock: filepath.Join(dir, "net.sock"), exited: make(chan struct{})}
	args := []string{
		"-nodefaults", "-no-user-config", "-machine", "q35", "-accel", "tcg", "-m", "256",
		"-display", "none",
		"-drive", "if=none,id=disk0,file=" + disk + ",format=qcow2",
		"-device", "virtio-blk-pci,drive=disk0,bootindex=0",
		"-chardev", "file,id=serial0,path=" + g.serial, "-serial", "chardev:serial0",
		// The guest NIC exactly as the driver is to start it.
		"-netdev", "stream,id=n0,server=on,addr.type=unix,addr.path=" + g.sock,
		"-device", "virtio-net-pci,netdev=n0,mac=" + guestMAC.String(),
	}
	if seed != nil {
		src := t.TempDir()
		for name, content := range seed {
			if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		iso := filepath.Join(dir, "seed.iso")
		if out, err := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-o", iso, "-V", "cidata", "-J", "-R", src).CombinedOutput(); err != nil {
			t.Fatalf("xorriso: %v: %s", err, out)
		}
		args = append(args, "-drive", "if=none,id=seed0,file="+iso+",format=raw,readonly=on", "-device", "virtio-blk-pci,drive=seed0")
	}
	cmd := exec.Command("qemu-system-x86_64", append(args, extra...)...)
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
	testutil.Eventually(t, timeout, "serial line "+line, func() bool {
		b, _ := os.ReadFile(g.serial)
		return bytes.Contains(b, []byte(line))
	})
}

// connect dials QEMU's netdev socket, waiting for QEMU to create it.
func (g *qemuGuest) connect(t testing.TB) net.Conn {
	t.Helper()
	var c net.Conn
	testutil.Eventually(t, 30*time.Second, "QEMU's netdev socket", func() bool {
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
	env, inChild := netns.Run(t)
	if !inChild {
		return
	}
	// An HTTP server on the outside host (allowed), and on the host's own address (denied).
	outside := netns.Listen(t, env.Outside, "tcp", netip.AddrPortFrom(env.OutsideAddr, 7780).String())
	go func() {
		_ = http.Serve(outside, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "outside-ok") }))
	}()
	own, err := net.Listen("tcp", netip.AddrPortFrom(env.InsideAddr, 7781).String())
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	go func() {
		_ = http.Serve(own, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "host-reached") }))
	}()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	seed := map[string]string{
		"meta-data": "instance-id: guestnet-test\nlocal-hostname: tiny\n",
		"user-data": "#cloud-config\nssh_authorized_keys:\n  - " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + "\n",
	}

	n, err := New(Config{GuestMAC: guestMAC, Policy: Policy{Allow: []netip.Prefix{netns.Prefix}}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	g := bootTiny(t, seed)
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

	// From inside the guest (busybox nc): the outside host answers; the host's own address,
	// the gateway and a private range not allowed are refused.
	sc := sshClient(t, ctx, n, signer)
	get := func(hostPort string) string {
		out, err := run(sc, `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 10 `+strings.Replace(hostPort, ":", " ", 1)+` 2>&1; echo " rc=$?"`)
		if err != nil {
			t.Fatalf("ssh: %v", err)
		}
		return out
	}
	if out := get(netip.AddrPortFrom(env.OutsideAddr, 7780).String()); !strings.Contains(out, "outside-ok") {
		t.Fatalf("guest → outside: %q", out)
	}
	for _, dst := range []string{netip.AddrPortFrom(env.InsideAddr, 7781).String(), "192.168.127.1:22", "10.232.0.9:80"} {
		out := get(dst)
		if strings.Contains(out, "host-reached") || strings.Contains(out, "SSH-") || strings.HasSuffix(out, "rc=0") {
			t.Fatalf("guest → %s: %q; want refused", dst, out)
		}
		t.Logf("guest → %s: %s", dst, out)
	}

	// Figures against the real guest (TCG): 16 MiB into `cat >/dev/null` over SSH through
	// DialGuest, and one-byte round trips through `cat`.
	measureSSH(t, sc)
	sc.Close()

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
	testutil.Eventually(t, 30*time.Second, "the lease after a vmd restart", func() bool { _, ok := n2.Lease(); return ok })
	if b := sshBanner(t, ctx, n2); !strings.HasPrefix(b, "SSH-2.0-dropbear") {
		t.Fatalf("banner after reconnect %q, want dropbear's", b)
	}
}
