//go:build debianimage

package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/internal/testutil/netns"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm/vmtest"
)

// debianSink is a write_files script: it listens on port argv[1] of every
// IPv4 address, prints "listening", then reads one connection to its end
// and prints the byte count and the sha256 (the template has python3 for
// cloud-init, and no nc).
const debianSink = `#!/usr/bin/python3
import hashlib, socket, sys
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", int(sys.argv[1])))
l.listen(1)
print("listening", flush=True)
c, _ = l.accept()
h, n = hashlib.sha256(), 0
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    h.update(b)
    n += len(b)
c.close()
print(n, h.hexdigest(), flush=True)
`

// debianUserData is the #cloud-config of the Debian e2e test and benchmark:
// write_files (a file with a mode, and the sink) and runcmd (/run/marker).
func debianUserData() string {
	return "#cloud-config\n" +
		"write_files:\n" +
		"  - path: /etc/vmd-test/written\n    content: |\n      written by cloud-init\n    permissions: '0640'\n" +
		"  - path: /usr/local/bin/vmd-sink\n    permissions: '0755'\n    content: |\n" +
		"      " + strings.ReplaceAll(strings.TrimSuffix(debianSink, "\n"), "\n", "\n      ") + "\n" +
		"runcmd:\n" +
		"  - [ sh, -c, 'echo runcmd-$(hostname) > /run/marker' ]\n"
}

// debianVMD starts vmd (inside the caller's network namespace) with the
// debian-12 template imported, a user whose stored SSH key is a fresh
// ed25519 key, and that key's private file.
func debianVMD(tb testing.TB, img string) (v *vmd, c *cli, key string) {
	tb.Helper()
	v = startVMD(tb, storetest.Backends()[0])
	if out, code := v.admin(tb, "", "image", "import", "debian-12", img); code != 0 {
		tb.Fatalf("vmd image import debian-12: %d %s", code, out)
	}
	c = loggedInTB(tb, v, "deb@example.com")
	key = filepath.Join(tb.TempDir(), "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deb@laptop", "-f", key).CombinedOutput(); err != nil {
		tb.Fatalf("ssh-keygen: %v %s", err, out)
	}
	c.must(0, "", "ssh-key", "add", key+".pub")
	return v, c, key
}

// TestDebianImageThroughVMD creates a VM from the debian-12 template
// through vmd, inside a network namespace the test creates (only loopback
// and a veth to a test host: nothing the guest or the test sends can leave
// the machine), with network nat, a key added through the API and a
// #cloud-config using runcmd and write_files. Then, through vmd only:
// `vmctl wait --for condition=ready` returns once Debian's qemu-ga answers;
// `vmctl ssh` (the system ssh, ProxyCommand vmctl port-forward --stdio, as
// the template's user debian, known_hosts pinned to the host keys the guest
// reported) reads what runcmd and write_files did and passes the exit
// status through; `vmctl port-forward` carries a transfer intact (sha256 on
// both ends).
func TestDebianImageThroughVMD(t *testing.T) {
	t.Parallel() // with TestDebianImageCloudInit: one TCG guest each, 2 cores
	// Outside the namespace: the image builds need the Debian mirror.
	img := vmtest.DebianImage(t)
	tinyImage(t)
	if _, inChild := netns.Run(t); !inChild {
		return
	}
	v, c, key := debianVMD(t, img)
	var ts []api.Template
	if err := json.Unmarshal([]byte(c.must(0, "", "templates", "-o", "json")), &ts); err != nil {
		t.Fatal(err)
	}
	var deb api.Template
	for _, tp := range ts {
		if tp.Name == "debian-12" {
			deb = tp
		}
	}
	if deb.SSHUser != "debian" || deb.MinMemoryMB != 1024 {
		t.Fatalf("GET /templates debian-12 = %+v, want ssh_user debian, min_memory_mb 1024", deb)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	udFile := filepath.Join(t.TempDir(), "user-data")
	if err := os.WriteFile(udFile, []byte(debianUserData()), 0o600); err != nil {
		t.Fatal(err)
	}

	created := time.Now()
	c.must(0, "", "create", "deb", "--template", "debian-12", "--userdata", udFile)
	vm := getVM(t, c, "deb")
	if vm.MemoryMB != 1024 || vm.Network != api.NetworkNAT {
		t.Fatalf("memory %d MB, network %q; want the template's minimum 1024 and nat", vm.MemoryMB, vm.Network)
	}
	// debian-12 has no ready line: only its agent can make it ready (its qemu-ga
	// starts as soon as the port appears, before cloud-init: ready comes
	// well before sshd, hence the wait for vmctl ssh below).
	waitReady(t, c, "deb", 15*time.Minute)
	toReady := time.Since(created)
	vm = getVM(t, c, "deb")
	if !vm.Ready || !hasEvent(vm, "ready: the guest agent answers") {
		t.Fatalf("after wait --for condition=ready: ready %v, events %+v", vm.Ready, vm.Events)
	}
	testutil.Eventually(t, 5*time.Minute, "the guest's DHCP lease in addresses", func() bool {
		for _, a := range getVM(t, c, "deb").Addresses {
			if a == "192.168.127.2/24" {
				return true
			}
		}
		return false
	})

	ssh := func(cmd ...string) (string, string, int) {
		return c.run("", append([]string{"ssh", "deb", "-i", key, "--"}, cmd...)...)
	}
	if !testutil.WaitEvery(10*time.Minute, 500*time.Millisecond, func() bool {
		_, _, code := ssh("true")
		return code == 0
	}) {
		_, errOut, code := ssh("true")
		t.Fatalf("vmctl ssh deb -- true: exit %d %s", code, errOut)
	}
	toSSH := time.Since(created)

	// cloud-init prints the host keys at the end of its init stage, before
	// sshd starts (the image moves keys-to-console there); vmd reads them.
	v.waitSerial(t, vm, "-----END SSH HOST KEY KEYS-----", 5*time.Minute)
	b, err := os.ReadFile(v.vmFile(vm, "serial.log"))
	if err != nil {
		t.Fatal(err)
	}
	printed := debianHostKeysIn(string(b))
	if len(printed) == 0 {
		t.Fatal("cloud-init printed no host keys block")
	}
	var got []string
	testutil.Eventually(t, time.Minute, "ssh_host_keys in the VM JSON", func() bool {
		got = getVM(t, c, "deb").SSHHostKeys
		return len(got) > 0
	})

	if strings.Join(got, "\n") != strings.Join(printed, "\n") {
		t.Fatalf("ssh_host_keys = %q, cloud-init printed %q", got, printed)
	}

	// Pinned now (StrictHostKeyChecking=yes on exactly the reported keys).
	if _, errOut, code := ssh("true"); code != 0 {
		t.Fatalf("vmctl ssh deb -- true, host key pinned: exit %d %s", code, errOut)
	}
	// runcmd runs in cloud-init's config stage, after sshd is up: waited for
	// on the console (cloud-init's final line), not with a login every
	// 20 ms, which under TCG takes the CPU cloud-init's stages need.
	v.waitSerial(t, vm, " finished at ", 10*time.Minute)
	toRuncmd := time.Since(created)
	if out, errOut, code := ssh("cat", "/run/marker"); code != 0 || out != "runcmd-deb\n" {
		t.Fatalf("vmctl ssh deb -- cat /run/marker: exit %d, %q %s", code, out, errOut)
	}
	known, err := os.ReadFile(filepath.Join(cliEnv(c, "XDG_CONFIG_HOME"), "vmctl", "known_hosts.d", vm.ID))
	if err != nil {
		t.Fatal(err)
	}
	var wantKnown string
	for _, k := range got {
		wantKnown += vm.ID + " " + k + "\n"
	}
	if string(known) != wantKnown {
		t.Fatalf("known_hosts.d/%s =\n%s\nwant\n%s", vm.ID, known, wantKnown)
	}
	out, errOut, code := ssh("sh", "-c", "'id -un; sudo cat /etc/vmd-test/written; stat -c %a /etc/vmd-test/written; cat ~/.ssh/authorized_keys'")
	if want := "debian\nwritten by cloud-init\n640\n"; code != 0 || !strings.HasPrefix(out, want) ||
		!strings.Contains(out, strings.Join(strings.Fields(string(pub))[:2], " ")) {
		t.Fatalf("user, write_files file and mode, authorized_keys over vmctl ssh: exit %d\n%s%s\nwant %q and the key added through the API",
			code, out, errOut, want)
	}
	// QEMU's virtio host_mtu, kept by networkd (its DHCP lease says the same).
	if out, errOut, code := ssh("sh", "-c", "'cat /sys/class/net/e*/mtu'"); code != 0 || strings.TrimSpace(out) != "65520" {
		t.Fatalf("guest NIC mtu: %d %q %s, want 65520", code, out, errOut)
	}
	if _, errOut, code := ssh("sh", "-c", "'exit 7'"); code != 7 {
		t.Fatalf("vmctl ssh exit 7: %d %s", code, errOut)
	}

	size := debianTransferMB(t) << 20
	took := debianPortForward(t, c, key, size)
	t.Logf("debian-12 through vmd under TCG (load %s): create to ready (agent) %.1f s, to vmctl ssh -- true %.1f s, to cloud-init finished %.1f s; %d MB through vmctl port-forward in %.1f s",
		loadAvg(), toReady.Seconds(), toSSH.Seconds(), toRuncmd.Seconds(), size>>20, took.Seconds())
	c.must(0, "", "delete", "deb", "--yes")
}

// debianTransferMB is the port-forward transfer's size: VMD_DEBIAN_TRANSFER_MB, else 100.
func debianTransferMB(t *testing.T) int {
	s := os.Getenv("VMD_DEBIAN_TRANSFER_MB")
	if s == "" {
		return 100
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("VMD_DEBIAN_TRANSFER_MB=%q: want a positive number", s)
	}
	return n
}

// debianPortForward sends size random bytes through `vmctl port-forward deb
// 127.0.0.1:0:9000` to the guest's vmd-sink (started over vmctl ssh) and
// checks the count and sha256 the guest computed; it returns the transfer's time.
func debianPortForward(t *testing.T, c *cli, key string, size int) time.Duration {
	t.Helper()
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := fmt.Sprintf("%d %s", size, hex.EncodeToString(sum[:]))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sink := exec.CommandContext(ctx, filepath.Join(binDir, "vmctl"), "ssh", "deb", "-i", key, "--", "/usr/local/bin/vmd-sink", "9000")
	sink.Env = c.env
	sinkOut, err := sink.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	sink.Stderr = os.Stderr
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = sink.Wait() }()
	lines := bufio.NewScanner(sinkOut)
	if !lines.Scan() || lines.Text() != "listening" {
		t.Fatalf("vmd-sink in the guest said %q (%v)", lines.Text(), lines.Err())
	}

	local := c.portForward(t, "deb", "127.0.0.1:0:9000")[9000]
	start := time.Now()
	conn, err := net.Dial("tcp", local)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(data); err != nil {
		t.Fatal(err)
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	_, _ = io.Copy(io.Discard, conn) // the sink closes after its last read
	conn.Close()
	if !lines.Scan() {
		t.Fatalf("vmd-sink ended without a result: %v", lines.Err())
	}
	took := time.Since(start)
	if lines.Text() != want {
		t.Fatalf("the guest received %q, sent %q", lines.Text(), want)
	}
	return took
}

// waitReady runs `vmctl wait NAME --for condition=ready` (longer than
// cli.run's 5 minutes: a Debian boot under TCG on a loaded machine can take that).
func waitReady(tb testing.TB, c *cli, name string, timeout time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Minute)
	defer cancel()
	w := exec.CommandContext(ctx, filepath.Join(binDir, "vmctl"), "wait", name, "--for", "condition=ready", "--timeout", timeout.String())
	w.Env = c.env
	if out, err := w.CombinedOutput(); err != nil {
		tb.Fatalf("vmctl wait %s --for condition=ready --timeout %s: %v %s", name, timeout, err, out)
	}
}

// cliEnv is the value of name in c's environment.
func cliEnv(c *cli, name string) string {
	for _, kv := range c.env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// hasEvent reports whether one of vm's events has message msg.
func hasEvent(vm api.VM, msg string) bool {
	for _, e := range vm.Events {
		if e.Message == msg {
			return true
		}
	}
	return false
}

// debianHostKeysIn are the "TYPE BASE64" keys of cloud-init's console block.
func debianHostKeysIn(log string) []string {
	m := regexp.MustCompile(`(?s)-----BEGIN SSH HOST KEY KEYS-----(.*?)-----END SSH HOST KEY KEYS-----`).FindStringSubmatch(log)
	if m == nil {
		return nil
	}
	var keys []string
	for _, l := range strings.Split(m[1], "\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			keys = append(keys, f[0]+" "+f[1])
		}
	}
	return keys
}
