package e2e

// Helpers that boot a template with a plain qemu-system-x86_64 command line
// (not vmd's driver) to test what the image itself does: DHCP, SSH, the
// guest agent, cloud-init. The NIC is QEMU user networking with restrict=on,
// so the guest reaches nothing outside QEMU; the one way in is a hostfwd
// on a loopback port.

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vmdhq/vmd/internal/testutil"
)

// plainGuest is one QEMU process started by bootPlain.
type plainGuest struct {
	t       *testing.T
	Started time.Time
	Serial  string // serial log path
	SSHPort string // loopback port forwarded to the guest's 22
	QGA     string // unix socket of the guest agent's virtio-serial port
	disk    string
	cmd     *exec.Cmd
	exited  chan struct{}
}

type bootOpts struct {
	memMB int
	noNIC bool
	noQGA bool
	seed  map[string]string // file name -> content; nil for no seed
	disk  string            // overlay to reuse (a reboot); "" makes a new one
}

// bootPlain starts base (through a fresh qcow2 overlay, or o.disk) under
// TCG on q35 like vmd does, with the serial port in a file.
func bootPlain(t *testing.T, base string, o bootOpts) *plainGuest {
	t.Helper()
	dir := t.TempDir()
	disk := o.disk
	if disk == "" {
		disk = filepath.Join(dir, "disk.qcow2")
		if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, disk).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img create: %v: %s", err, out)
		}
	}
	if o.memMB == 0 {
		o.memMB = 256
	}
	g := &plainGuest{t: t, disk: disk, Serial: filepath.Join(dir, "serial.log"), QGA: filepath.Join(dir, "qga.sock"), exited: make(chan struct{})}
	args := []string{
		"-nodefaults", "-no-user-config", "-machine", "q35", "-accel", "tcg", "-m", fmt.Sprint(o.memMB),
		"-display", "none", "-vga", "std",
		"-drive", "if=none,id=disk0,file=" + disk + ",format=qcow2",
		"-device", "virtio-blk-pci,drive=disk0,bootindex=0",
		"-chardev", "file,id=serial0,path=" + g.Serial,
		"-serial", "chardev:serial0",
	}
	if o.seed != nil {
		seed := filepath.Join(dir, "seed.iso")
		makeSeedISO(t, seed, o.seed)
		args = append(args, "-drive", "if=none,id=seed0,file="+seed+",format=raw,readonly=on",
			"-device", "virtio-blk-pci,drive=seed0")
	}
	if !o.noNIC {
		_, port, _ := net.SplitHostPort(freeAddr(t))
		g.SSHPort = port
		args = append(args, "-netdev", "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:"+port+"-:22",
			"-device", "virtio-net-pci,netdev=n0")
	}
	if !o.noQGA {
		args = append(args, "-chardev", "socket,path="+g.QGA+",server=on,wait=off,id=qga0",
			"-device", "virtio-serial", "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0")
	}
	g.cmd = exec.Command("qemu-system-x86_64", args...)
	var stderr testutil.SyncBuffer
	g.cmd.Stderr = &stderr
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	g.Started = time.Now()
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	go func() { _ = g.cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() {
		_ = g.cmd.Process.Kill()
		<-g.exited
		if t.Failed() {
			b, _ := os.ReadFile(g.Serial)
			t.Logf("qemu stderr:\n%s\nserial log:\n%s", stderr.String(), b)
		}
	})
	return g
}

// makeSeedISO writes a NoCloud seed like pkg/vm/qemu's: ISO 9660 labelled cidata.
func makeSeedISO(t *testing.T, out string, files map[string]string) {
	t.Helper()
	src := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-o", out, "-V", "cidata", "-J", "-R", src).CombinedOutput(); err != nil {
		t.Fatalf("xorriso (make deps installs it): %v: %s", err, b)
	}
}

// waitSerial waits until the serial log matches re and returns the match's
// submatches and the time since QEMU started.
func (g *plainGuest) waitSerial(re string, timeout time.Duration) ([]string, time.Duration) {
	g.t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	testutil.Eventually(g.t, timeout, "serial line "+re, func() bool {
		b, _ := os.ReadFile(g.Serial)
		m = rx.FindStringSubmatch(string(b))
		return m != nil
	})

	return m, time.Since(g.Started)
}

// diskPath is the guest's overlay, to boot it again once QEMU has exited.
func (g *plainGuest) diskPath(t *testing.T) string {
	t.Helper()
	select {
	case <-g.exited:
	default:
		t.Fatal("diskPath: the first QEMU still runs")
	}
	return g.disk
}

// waitExit waits for QEMU to end by itself (a guest power-off).
func (g *plainGuest) waitExit(timeout time.Duration) time.Duration {
	g.t.Helper()
	select {
	case <-g.exited:
		return time.Since(g.Started)
	case <-time.After(timeout):
		g.t.Fatalf("qemu still running %s after the guest was asked to power off", timeout)
		return 0
	}
}

// sshKey is a fresh ed25519 key: its authorized_keys line and a signer.
func sshKey(t *testing.T) (string, ssh.Signer) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))), signer
}

// sshBanner reads the server's identification line on the forwarded port.
// QEMU accepts on the host port before the guest listens and then closes, so
// the caller retries.
func sshBanner(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// sshRun runs cmd as user with signer; the server must present one of
// hostKeys (authorized_keys-style "TYPE BASE64" lines).
func sshRun(addr, user string, signer ssh.Signer, hostKeys []string, cmd string) (string, error) {
	var known []ssh.PublicKey
	for _, h := range hostKeys {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(h))
		if err != nil {
			return "", fmt.Errorf("parse host key %q: %w", h, err)
		}
		known = append(known, k)
	}
	cb := func(_ string, _ net.Addr, key ssh.PublicKey) error {
		for _, k := range known {
			if bytes.Equal(k.Marshal(), key.Marshal()) {
				return nil
			}
		}
		return fmt.Errorf("host key %s %s is not one the guest printed", key.Type(), ssh.FingerprintSHA256(key))
	}
	c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: cb, Timeout: 10 * time.Second,
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}

// qga is a minimal QEMU guest agent client for these tests: one command at
// a time, newline-delimited JSON, re-synchronised with guest-sync.
type qga struct {
	mu sync.Mutex
	c  net.Conn
	r  *bufio.Reader
	id int
}

// dialQGA connects to the agent socket and waits until the agent answers a
// guest-sync (the port is open long before qemu-ga runs in the guest).
func dialQGA(t *testing.T, path string, timeout time.Duration) *qga {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial guest agent socket: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	q := &qga{c: c, r: bufio.NewReader(c), id: 1000}
	testutil.Eventually(t, timeout, "guest agent guest-sync", func() bool { return q.sync(time.Second) == nil })
	return q
}

func (q *qga) sync(wait time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.id++
	_ = q.c.SetDeadline(time.Now().Add(wait))
	defer q.c.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(q.c, `{"execute":"guest-sync","arguments":{"id":%d}}`+"\n", q.id); err != nil {
		return err
	}
	for {
		line, err := q.r.ReadBytes('\n')
		if err != nil {
			return err
		}
		var r struct {
			Return int `json:"return"`
		}
		// Older replies (to syncs that timed out) come first: skip them.
		if json.Unmarshal(line, &r) == nil && r.Return == q.id {
			return nil
		}
	}
}

// do runs one agent command; out gets the "return" member.
func (q *qga) do(cmd string, args any, out any) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	_ = q.c.SetDeadline(time.Now().Add(30 * time.Second))
	defer q.c.SetDeadline(time.Time{})
	if _, err := q.c.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if cmd == "guest-shutdown" {
		return nil // no reply on success
	}
	line, err := q.r.ReadBytes('\n')
	if err != nil && err != io.EOF {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	var r struct {
		Return json.RawMessage `json:"return"`
		Error  *struct {
			Desc string `json:"desc"`
		} `json:"error"`
	}
	if err := json.Unmarshal(line, &r); err != nil {
		return fmt.Errorf("%s: reply %q: %w", cmd, line, err)
	}
	if r.Error != nil {
		return fmt.Errorf("%s: %s", cmd, r.Error.Desc)
	}
	if out != nil {
		return json.Unmarshal(r.Return, out)
	}
	return nil
}

// exec runs path with args through guest-exec and waits for its exit code.
func (q *qga) exec(t *testing.T, path string, args ...string) (int, string) {
	t.Helper()
	var pid struct {
		PID int `json:"pid"`
	}
	if err := q.do("guest-exec", map[string]any{"path": path, "arg": args, "capture-output": true}, &pid); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Exited   bool   `json:"exited"`
		ExitCode int    `json:"exitcode"`
		Out      []byte `json:"out-data"`
	}
	testutil.Eventually(t, 30*time.Second, "guest-exec-status exited", func() bool {
		if err := q.do("guest-exec-status", map[string]any{"pid": pid.PID}, &st); err != nil {
			t.Fatal(err)
		}
		return st.Exited
	})

	return st.ExitCode, string(st.Out)
}
