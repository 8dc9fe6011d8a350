package e2e

import (
	"encoding/base64"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
)

// TestTinyImageGuestServices boots the tiny template with a NIC on
// restrict=on user networking and the guest agent's virtio-serial port, as
// plain QEMU: DHCP gives it an address, dropbear takes the seed's keys (from
// user-data's cloud-config and from meta-data) and the host key it prints,
// qemu-ga answers ping, exec, files and interfaces, and guest-shutdown powers
// it off. A second boot of the same disk counts 2 and keeps its host key.
func TestTinyImageGuestServices(t *testing.T) {
	parallel(t, 1)
	img := tinyImage(t)
	userKey, userSigner := sshKey(t)
	metaKey, metaSigner := sshKey(t)
	seed := map[string]string{
		"meta-data": "instance-id: i-tiny\nlocal-hostname: tiny-net\npublic-keys:\n  - " + metaKey + "\n",
		"user-data": "#cloud-config\nssh_authorized_keys:\n  - " + userKey + "\n",
	}
	g := bootPlain(t, img, bootOpts{seed: seed})

	_, booted := g.waitSerial(`vmd-tiny: booted`, 90*time.Second)
	m, toIP := g.waitSerial(`vmd-tiny: ip (\S+)`, 60*time.Second)
	if m[1] != "10.0.2.15" {
		t.Fatalf("ip line %q, want QEMU user networking's first lease 10.0.2.15", m[1])
	}
	// One line per host key; the ECDSA one comes last.
	_, toSSH := g.waitSerial(ecdsaHostKeyLine, 60*time.Second)
	hostKey := hostKeys(t, g)
	t.Logf("tiny boot under TCG: booted %.1f s, ip %.1f s, hostkey (dropbear listening) %.1f s after QEMU start",
		booted.Seconds(), toIP.Seconds(), toSSH.Seconds())
	g.waitSerial(`vmd-tiny: boot 1\b`, time.Second)

	addr := "127.0.0.1:" + g.SSHPort
	var banner string
	testutil.Eventually(t, 30*time.Second, "SSH banner on "+addr, func() bool {
		b, err := sshBanner(addr)
		banner = b
		return err == nil && b != ""
	})

	if !strings.HasPrefix(banner, "SSH-2.0-dropbear") {
		t.Fatalf("banner %q, want dropbear's", banner)
	}
	out, err := sshRun(addr, "root", userSigner, hostKey, "echo $((6*7)) $(id -u) $(hostname)")
	if err != nil || strings.TrimSpace(out) != "42 0 tiny-net" {
		t.Fatalf("ssh with the user-data key: %q, %v", out, err)
	}
	if out, err := sshRun(addr, "root", metaSigner, hostKey, "echo meta"); err != nil || strings.TrimSpace(out) != "meta" {
		t.Fatalf("ssh with the meta-data key: %q, %v", out, err)
	}
	_, stranger := sshKey(t)
	if _, err := sshRun(addr, "root", stranger, hostKey, "true"); err == nil {
		t.Fatal("ssh with a key the seed does not name was let in")
	}

	q := dialQGA(t, g.QGA, 30*time.Second)
	if err := q.do("guest-ping", nil, nil); err != nil {
		t.Fatal(err)
	}
	if code, out := q.exec(t, "/bin/sh", "-c", "echo agent; exit 42"); code != 42 || out != "agent\n" {
		t.Fatalf("guest-exec: exit %d output %q, want 42 %q", code, out, "agent\n")
	}
	var h int
	if err := q.do("guest-file-open", map[string]any{"path": "/tmp/f", "mode": "w"}, &h); err != nil {
		t.Fatal(err)
	}
	if err := q.do("guest-file-write", map[string]any{"handle": h, "buf-b64": base64.StdEncoding.EncodeToString([]byte("file-ok"))}, nil); err != nil {
		t.Fatal(err)
	}
	if err := q.do("guest-file-close", map[string]any{"handle": h}, nil); err != nil {
		t.Fatal(err)
	}
	if out, err := sshRun(addr, "root", userSigner, hostKey, "cat /tmp/f"); err != nil || out != "file-ok" {
		t.Fatalf("file written by guest-file-write, read by ssh: %q, %v", out, err)
	}
	if err := q.do("guest-file-open", map[string]any{"path": "/tmp/f", "mode": "r"}, &h); err != nil {
		t.Fatal(err)
	}
	var rd struct {
		Buf []byte `json:"buf-b64"`
	}
	if err := q.do("guest-file-read", map[string]any{"handle": h}, &rd); err != nil || string(rd.Buf) != "file-ok" {
		t.Fatalf("guest-file-read: %q, %v", rd.Buf, err)
	}
	var ifs []struct {
		Name string `json:"name"`
		IPs  []struct {
			Addr string `json:"ip-address"`
		} `json:"ip-addresses"`
	}
	if err := q.do("guest-network-get-interfaces", nil, &ifs); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, i := range ifs {
		for _, a := range i.IPs {
			found = found || (i.Name == "eth0" && a.Addr == "10.0.2.15")
		}
	}
	if !found {
		t.Fatalf("guest-network-get-interfaces has no eth0 10.0.2.15: %+v", ifs)
	}

	asked := time.Now()
	if err := q.do("guest-shutdown", nil, nil); err != nil {
		t.Fatal(err)
	}
	g.waitExit(60 * time.Second)
	t.Logf("guest-shutdown to QEMU exit: %.1f s", time.Since(asked).Seconds())
	g.waitSerial(`reboot: Power down`, time.Second)

	// Same disk again, without NIC or agent: the counter says 2 and the host
	// key is the one known_hosts already holds.
	g2 := bootPlain(t, img, bootOpts{disk: g.diskPath(t), noNIC: true, noQGA: true})
	g2.waitSerial(`vmd-tiny: boot 2\b`, 90*time.Second)
	g2.waitSerial(`vmd-tiny: booted`, time.Second)
	g2.waitSerial(ecdsaHostKeyLine, 60*time.Second)
	if hk2 := hostKeys(t, g2); strings.Join(hk2, "\n") != strings.Join(hostKey, "\n") {
		t.Fatalf("host keys changed across a reboot: %q then %q", hostKey, hk2)
	}
}

// hostKeyLine is one "vmd-tiny: hostkey TYPE BASE64" line of a serial log,
// to its end: the guest writes the serial port byte by byte, so a line that
// has begun may not have arrived yet.
var hostKeyLine = regexp.MustCompile(`vmd-tiny: hostkey ((?:ssh-ed25519|ecdsa-sha2-nistp256) [A-Za-z0-9+/=]+)\r?\n`)

// ecdsaHostKeyLine is the last host key line (ECDSA comes last), ended.
const ecdsaHostKeyLine = `vmd-tiny: hostkey ecdsa-sha2-nistp256 [A-Za-z0-9+/=]+\r?\n`

// hostKeyLines are the key parts of serial's complete host key lines.
func hostKeyLines(serial []byte) []string {
	var keys []string
	for _, m := range hostKeyLine.FindAllSubmatch(serial, -1) {
		keys = append(keys, string(m[1]))
	}
	return keys
}

// hostKeys are the "vmd-tiny: hostkey TYPE BASE64" lines of g's serial log:
// one ed25519 and one ECDSA key.
func hostKeys(t *testing.T, g *plainGuest) []string {
	t.Helper()
	b, err := os.ReadFile(g.Serial)
	if err != nil {
		t.Fatal(err)
	}
	keys := hostKeyLines(b)
	if len(keys) != 2 || !strings.HasPrefix(keys[0], "ssh-ed25519 ") || !strings.HasPrefix(keys[1], "ecdsa-sha2-nistp256 ") {
		t.Fatalf("hostkey lines: %q, want one ssh-ed25519 then one ecdsa-sha2-nistp256", keys)
	}
	return keys
}
