package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/internal/testutil/netns"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// bearer logs email in over HTTP and returns its CLI bearer token.
func bearer(t *testing.T, v *vmd, email string) string {
	t.Helper()
	b, _ := json.Marshal(api.LoginRequest{Email: email, Password: "correct horse battery", Client: "cli"})
	res, err := http.Post(v.URL+api.BasePath+"/auth/login", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var lr api.LoginResponse
	if err := json.NewDecoder(res.Body).Decode(&lr); err != nil || lr.Token == "" {
		t.Fatalf("login %s: %d %v", email, res.StatusCode, err)
	}
	return lr.Token
}

// listening is the set of listening TCP sockets in this namespace.
func listening(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ss", "-Hltn").Output()
	if err != nil {
		t.Fatal(err)
	}
	var socks []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) >= 4 {
			socks = append(socks, f[3])
		}
	}
	sort.Strings(socks)
	return socks
}

// standIn accepts on l and answers every connection with marker.
func standIn(l net.Listener, marker string) {
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(marker + "\n"))
			c.Close()
		}
	}()
}

// TestNetworkSSHPortForward runs vmd and its guests inside a network
// namespace with only loopback and a veth to a test host on an allowed
// /24, then: ssh through vmd with the exit status passed through, a 100 MB
// port-forward transfer intact, the guest's isolation from the host, other
// guests and unallowed ranges (the test host reachable), no host port for a
// guest, and the port-forward's refusals.
func TestNetworkSSHPortForward(t *testing.T) {
	parallel(t, 2)
	env, inChild := netns.Run(t)
	if !inChild {
		return
	}
	// An unallowed private range, routed to the test host: only the policy stops the guest.
	for _, args := range [][]string{
		{"-n", env.Outside, "addr", "add", "172.16.5.2/32", "dev", "lo"},
		{"route", "add", "172.16.5.0/24", "via", env.OutsideAddr.String()},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v %s", strings.Join(args, " "), err, out)
		}
	}
	const outsideMarker, privateMarker, hostMarker = "outside-host-marker", "private-range-marker", "host-loopback-marker"
	standIn(netns.Listen(t, env.Outside, "tcp", env.OutsideAddr.String()+":7001"), outsideMarker)
	standIn(netns.Listen(t, env.Outside, "tcp", "172.16.5.2:7002"), privateMarker)
	// A loopback service stand-in (PostgreSQL, Redis) and one on every host address.
	hostLn, err := net.Listen("tcp", "0.0.0.0:7003")
	if err != nil {
		t.Fatal(err)
	}
	defer hostLn.Close()
	standIn(hostLn, hostMarker)
	// From the host they are all reachable: a closed probe from the guest is the policy's doing.
	for _, a := range []string{env.OutsideAddr.String() + ":7001", "172.16.5.2:7002", "127.0.0.1:7003", env.InsideAddr.String() + ":7003"} {
		c, err := net.DialTimeout("tcp", a, 5*time.Second)
		if err != nil {
			t.Fatalf("host cannot reach its own stand-in %s: %v", a, err)
		}
		c.Close()
	}

	sqlite := storetest.Backends()[0]
	v := startVMD(t, sqlite, "--guest-egress-allow", netns.Prefix.String())
	_, vmdPort, _ := net.SplitHostPort(strings.TrimPrefix(v.URL, "http://"))
	a := loggedIn(t, v, "net-a@example.com")
	b := loggedIn(t, v, "net-b@example.com")

	keyDir := t.TempDir()
	key := filepath.Join(keyDir, "id")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	ud := filepath.Join(keyDir, "user-data")
	if err := os.WriteFile(ud, []byte("#cloud-config\nssh_authorized_keys:\n  - "+strings.TrimSpace(string(pub))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := listening(t)
	a.must(0, "", "create", "net1", "--template", "tiny", "--memory", "256", "--userdata", ud, "--wait", "--timeout", "4m")
	a.must(0, "", "create", "net2", "--template", "tiny", "--userdata", ud, "--wait", "--timeout", "4m")
	a.must(0, "", "create", "nonet", "--template", "tiny", "--network", "none")
	vm1, vm2 := getVM(t, a, "net1"), getVM(t, a, "net2")
	if vm1.Network != api.NetworkNAT || getVM(t, a, "nonet").Network != api.NetworkNone {
		t.Fatalf("networks: %q %q", vm1.Network, getVM(t, a, "nonet").Network)
	}
	v.waitSerial(t, vm1, "vmd-tiny: hostkey", 4*time.Minute)
	v.waitSerial(t, vm2, "vmd-tiny: hostkey", 4*time.Minute)
	testutil.Eventually(t, time.Minute, "net1's address", func() bool {
		got := getVM(t, a, "net1").Addresses
		return len(got) == 1 && got[0] == "192.168.127.2/24"
	})

	ssh := func(c *cli, stdin, name string, cmd ...string) (string, string, int) {
		return c.run(stdin, append([]string{"ssh", name, "-i", key, "--"}, cmd...)...)
	}
	if out, errOut, code := ssh(a, "", "net1", "echo", "ok"); code != 0 || strings.TrimSpace(out) != "ok" {
		t.Fatalf("vmctl ssh echo ok: %d %q %s", code, out, errOut)
	}
	// The NIC's MTU comes from QEMU (virtio host_mtu), not from a DHCP client.
	if out, errOut, code := ssh(a, "", "net1", "cat", "/sys/class/net/eth0/mtu"); code != 0 || strings.TrimSpace(out) != "65520" {
		t.Fatalf("guest eth0 mtu: %d %q %s, want 65520", code, out, errOut)
	}
	if _, errOut, code := ssh(a, "", "net1", "sh", "-c", "'exit 7'"); code != 7 {
		t.Fatalf("vmctl ssh exit 7: %d %s", code, errOut)
	}
	if _, _, code := ssh(b, "", "net1", "true"); code != 3 {
		t.Fatalf("another user's vmctl ssh: exit %d, want 3 (not found)", code)
	}

	// 100 MB through `vmctl port-forward LOCAL:GUEST` into busybox nc in the guest.
	data := make([]byte, 100<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	recv := make(chan string, 1)
	go func() {
		out, errOut, code := ssh(a, "", "net1", "sh", "-c", "'nc -l -p 9000 | sha256sum'")
		recv <- fmt.Sprintf("%d %s %s", code, strings.TrimSpace(out), errOut)
	}()
	if !testutil.WaitFor(time.Minute, func() bool {
		_, _, code := ssh(a, "", "net1", "grep", "-qi", "':2328 '", "/proc/net/tcp", "/proc/net/tcp6")
		return code == 0
	}) {
		out, errOut, _ := ssh(a, "", "net1", "sh", "-c", "'cat /proc/net/tcp; ps; nc 2>&1 | head -20'")
		select {
		case r := <-recv:
			t.Logf("receiver ended: %s", r)
		default:
		}
		t.Fatalf("nc not listening in the guest:\n%s\n%s", out, errOut)
	}
	local := a.portForward(t, "net1", "127.0.0.1:0:9000")[9000]
	start := time.Now()
	conn, err := net.Dial("tcp", local)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(conn, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	_, _ = io.Copy(io.Discard, conn)
	conn.Close()
	select {
	case got := <-recv:
		if !strings.HasPrefix(got, "0 "+want) {
			t.Fatalf("guest received %s, want sha256 %s", got, want)
		}
	case <-time.After(5 * time.Minute):
		t.Fatal("guest did not finish receiving")
	}
	t.Logf("100 MB through vmctl port-forward in %v", time.Since(start))

	// Isolation, probed from inside the guest. busybox nc connects or fails; a marker proves a reach.
	probe := func(addr, port string) string {
		out, _, _ := ssh(a, "", "net1", "sh", "-c", fmt.Sprintf("'nc -w 3 %s %s </dev/null 2>&1; echo rc=$?'", addr, port))
		return out
	}
	if out := probe(env.OutsideAddr.String(), "7001"); !strings.Contains(out, outsideMarker) {
		t.Fatalf("the allowed test host is not reachable from the guest: %q", out)
	}
	for _, c := range []struct{ what, addr, port, marker string }{
		{"gateway on vmd's port", "192.168.127.1", vmdPort, ""},
		{"gateway on a loopback service", "192.168.127.1", "7003", hostMarker},
		{"host loopback", "127.0.0.1", "7003", hostMarker},
		{"host's own address on the stand-in", env.InsideAddr.String(), "7003", hostMarker},
		{"host's own address on vmd's port", env.InsideAddr.String(), vmdPort, ""},
		{"unallowed private range", "172.16.5.2", "7002", privateMarker},
	} {
		out := probe(c.addr, c.port)
		if strings.Contains(out, "rc=0") || (c.marker != "" && strings.Contains(out, c.marker)) {
			t.Errorf("%s (%s:%s) reachable from the guest: %q", c.what, c.addr, c.port, out)
		}
	}
	// Another guest: net2 listens on 9001 at 192.168.127.2 of its own stack; net1's .2 is itself.
	go func() { _, _, _ = ssh(a, "", "net2", "sh", "-c", "'echo net2-marker | nc -l -p 9001'") }()
	testutil.Eventually(t, time.Minute, "net2 listening", func() bool {
		_, _, code := ssh(a, "", "net2", "grep", "-qi", "':2329 '", "/proc/net/tcp", "/proc/net/tcp6")
		return code == 0
	})

	if out := probe("192.168.127.2", "9001"); strings.Contains(out, "net2-marker") {
		t.Errorf("another guest reachable from net1: %q", out)
	}

	// No guest port on the host: the listening sockets are those of before (vmd's own
	// included), but for the test's own vmctl port-forward listener.
	var after []string
	for _, l := range listening(t) {
		if l != local {
			after = append(after, l)
		}
	}
	if strings.Join(after, " ") != strings.Join(before, " ") {
		t.Errorf("listening sockets changed with running guests:\nbefore %v\nafter  %v", before, after)
	}

	// Refusals before the upgrade.
	ta := bearer(t, v, "net-a@example.com")
	tb := bearer(t, v, "net-b@example.com")
	ca, cb := client.New(v.URL, ta), client.New(v.URL, tb)
	bg := context.Background()
	status := func(err error) int {
		var ae *client.APIError
		if err == nil {
			return 101
		}
		if errors.As(err, &ae) {
			return ae.Status
		}
		t.Fatalf("not an api error: %v", err)
		return 0
	}
	for _, c := range []struct {
		what   string
		c      *client.Client
		vm     string
		port   int
		status int
		code   string
	}{
		{"another user's vm", cb, vm1.ID, 22, 404, api.CodeNotFound},
		{"port 0", ca, vm1.ID, 0, 422, api.CodeValidation},
		{"port 70000", ca, vm1.ID, 70000, 422, api.CodeValidation},
		{"network none", ca, "nonet", 22, 409, api.CodeConflict},
		{"nothing listening", ca, vm1.ID, 9, 502, api.CodePortClosed},
	} {
		s, err := c.c.DialPortForward(bg, c.vm, c.port)
		if err == nil {
			s.Close()
		}
		if got := status(err); got != c.status || client.ErrorCode(err) != c.code {
			t.Errorf("%s: %d %q (%v), want %d %s", c.what, got, client.ErrorCode(err), err, c.status, c.code)
		}
	}
	// A one-time token opens one stream; used again it is refused.
	pr, err := ca.PortForward(bg, vm1.ID, 22)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ca.DialStreamURL(bg, pr.WSURL)
	if err != nil {
		t.Fatalf("one-time token: %v", err)
	}
	banner := make([]byte, 8)
	if _, err := io.ReadFull(s, banner); err != nil || string(banner) != "SSH-2.0-" {
		t.Fatalf("banner through the one-time stream: %q %v", banner, err)
	}
	s.Close()
	if _, err := ca.DialStreamURL(bg, pr.WSURL); status(err) != 403 {
		t.Errorf("used token: %v, want 403", err)
	}

	// vmd restarts: an open stream ends (not hangs), the adopted guest keeps its address
	// and answers through the new vmd.
	open, err := ca.DialPortForward(bg, vm1.ID, 22)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(open, banner); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, open); ended <- err }()
	v.stop()
	select {
	case <-ended:
	case <-time.After(20 * time.Second):
		t.Fatal("a port-forward stream outlived vmd's shutdown")
	}
	open.Close()
	v.start()
	testutil.Eventually(t, time.Minute, "net1's address after adoption", func() bool {
		got := getVM(t, a, "net1").Addresses
		return len(got) == 1 && got[0] == "192.168.127.2/24"
	})

	if out, errOut, code := ssh(a, "", "net1", "echo", "again"); code != 0 || strings.TrimSpace(out) != "again" {
		t.Fatalf("vmctl ssh after vmd restart: %d %q %s", code, out, errOut)
	}
}
