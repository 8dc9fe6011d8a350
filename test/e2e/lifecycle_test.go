package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
	"github.com/vmdhq/vmd/pkg/rfb"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

func serialLen(t *testing.T, v *vmd, vm api.VM) int {
	t.Helper()
	b, err := os.ReadFile(v.vmFile(vm, "serial.log"))
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// TestPauseResume: a guest printing a line a second on its serial port
// (typed through vmd's console) goes silent when paused, its console stays
// open and shows the frozen screen, a vmd restart keeps it paused with the
// same process, resume lets it go on, and delete works from paused.
func TestPauseResume(t *testing.T) {
	parallel(t, 1)
	v := startVMD(t, storetest.Backends()[0])
	c := loggedIn(t, v, "ada@example.com")
	c.must(0, "", "create", "frozen", "--template", "tiny", "--memory", "128", "--wait", "--timeout", "2m")
	vm := getVM(t, c, "frozen")
	v.waitSerial(t, vm, "vmd-tiny:~# ", 90*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	lr, err := client.New(v.URL, "").Login(ctx, "ada@example.com", "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	ada := client.New(v.URL, lr.Token)
	conn, err := ada.DialConsole(ctx, "frozen")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc, err := rfb.Handshake(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	typeRFB(t, conn, "while true; do echo tick; sleep 1; done >/dev/ttyS0\n")
	testutil.Eventually(t, 60*time.Second, "ticks on the serial port", func() bool {
		b, _ := os.ReadFile(v.vmFile(vm, "serial.log"))
		return strings.Count(string(b), "tick") >= 2
	})
	pid := v.pid(t, vm)

	asked := time.Now()
	c.must(0, "", "pause", "frozen")
	c.must(0, "", "wait", "frozen", "--for", "state=paused", "--timeout", "30s")
	t.Logf("pause: paused %s after vmctl pause started (vmctl wait polls every second)", time.Since(asked).Round(time.Millisecond))
	size := serialLen(t, v, vm)
	testutil.Holds(t, 3*time.Second, "no serial output while paused", func() bool { return serialLen(t, v, vm) == size })
	// The console stayed open through the pause and still shows the screen.
	sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
	img, err := rc.Snapshot(sctx)
	scancel()
	if err != nil {
		t.Fatalf("console of the paused vm: %v", err)
	}
	if rfb.Colours(img, 3) < 2 {
		t.Fatal("the paused vm's screen is one colour")
	}
	// A new console opens on a paused VM too.
	conn2, err := ada.DialConsole(ctx, "frozen")
	if err != nil {
		t.Fatalf("new console of the paused vm: %v", err)
	}
	conn2.Close()

	// vmd restarts: the guest is adopted and stays paused.
	v.stop()
	v.start()
	testutil.Holds(t, 3*time.Second, "paused across a vmd restart", func() bool {
		got := getVM(t, c, "frozen")
		return got.State == api.StatePaused && v.pid(t, got) == pid && alive(pid) && serialLen(t, v, vm) == size
	})

	c.must(0, "", "resume", "frozen")
	c.must(0, "", "wait", "frozen", "--for", "state=running", "--timeout", "30s")
	testutil.Eventually(t, 30*time.Second, "ticks after resume", func() bool { return serialLen(t, v, vm) > size })
	if got := getVM(t, c, "frozen"); v.pid(t, got) != pid {
		t.Fatal("resume replaced the process")
	}
	// Resume of a running VM changes nothing; pause of a stopped one is refused.
	c.must(0, "", "resume", "frozen")

	c.must(0, "", "pause", "frozen")
	c.must(0, "", "wait", "frozen", "--for", "state=paused", "--timeout", "30s")
	c.must(0, "", "delete", "frozen", "--yes", "--wait", "--timeout", "60s")
	testutil.Eventually(t, 10*time.Second, "qemu gone after delete from paused", func() bool { return !alive(pid) })
	if _, err := os.Stat(filepath.Join(v.DataDir, "vms", vm.OwnerID, vm.ID)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("files left after delete: %v", err)
	}

	c.must(0, "", "create", "cold", "--template", "tiny", "--memory", "128", "--wait", "--timeout", "2m")
	c.must(0, "", "stop", "cold", "--force")
	c.must(0, "", "wait", "cold", "--for", "state=stopped", "--timeout", "30s")
	_, errOut, code := c.run("", "pause", "cold")
	if code != 5 || !strings.Contains(errOut, "only a running VM can be paused") {
		t.Fatalf("pause of a stopped vm: exit %d, %s", code, errOut)
	}
}

// usage is the caller's quota usage as vmctl me shows it.
func usage(t *testing.T, c *cli) api.Quota {
	t.Helper()
	var me api.User
	if err := json.Unmarshal([]byte(c.must(0, "", "me", "-o", "json")), &me); err != nil {
		t.Fatal(err)
	}
	return me.Usage
}

// expiryEvent waits for the change feed's entry saying vm expired.
func expiryEvent(t *testing.T, ada *client.Client, vmID string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := ada.OpenEvents(ctx, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for ch := range s.Changes() {
		if ch.VMID == vmID && strings.HasPrefix(ch.Message, "expired at ") {
			return ch.Message
		}
	}
	t.Fatalf("no expiry in the change feed of %s: %v", vmID, s.Err())
	return ""
}

// TestExpiry: a VM with a TTL is deleted when it runs out, with an event
// saying why and nothing left behind; extend moves the deadline; a VM whose
// deadline passed while vmd was stopped goes when vmd starts again; the
// operator's per-user maximum is enforced. --min-ttl lets the test use
// seconds (vmd's default minimum is 1 min).
func TestExpiry(t *testing.T) {
	parallel(t, 1)
	v := startVMD(t, storetest.Backends()[1], "--min-ttl", "2s") // PostgreSQL; the unit tests cover both
	c := loggedIn(t, v, "ada@example.com")
	ctx := context.Background()
	lr, err := client.New(v.URL, "").Login(ctx, "ada@example.com", "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	ada := client.New(v.URL, lr.Token)

	_, errOut, code := c.run("", "create", "tooshort", "--template", "tiny", "--ttl", "1s")
	if code != 1 || !strings.Contains(errOut, "ttl: must be at least 2s") {
		t.Fatalf("ttl below the minimum: exit %d, %s", code, errOut)
	}

	start := time.Now()
	// The TTLs leave room for a slow boot under load (the tests run in
	// parallel): the extend and the vmd stop below must come before them.
	c.must(0, "", "create", "short", "--template", "tiny", "--memory", "128", "--ttl", "20s", "--wait", "--timeout", "2m")
	short := getVM(t, c, "short")
	pid := v.pid(t, short)
	if short.ExpiresAt == nil {
		t.Fatal("no expires_at")
	}
	wide := c.must(0, "", "get", "short", "-o", "wide")
	if !strings.Contains(wide, short.ExpiresAt.UTC().Format(time.RFC3339)) {
		t.Fatalf("get -o wide lacks the expiry: %s", wide)
	}
	c.must(0, "", "extend", "short", "30s")
	ext := getVM(t, c, "short")
	if !ext.ExpiresAt.After(*short.ExpiresAt) {
		t.Fatalf("extend: %v, was %v", ext.ExpiresAt, short.ExpiresAt)
	}
	c.must(0, "", "wait", "short", "--for", "delete", "--timeout", "90s")
	t.Logf("expiry: gone %s after expires_at (vmctl wait polls every second)", time.Since(*ext.ExpiresAt).Round(time.Millisecond))
	if took := time.Since(start); took > 2*time.Minute {
		t.Fatalf("expired vm gone after %s", took)
	}
	if msg := expiryEvent(t, ada, short.ID); !strings.Contains(msg, ext.ExpiresAt.UTC().Format(time.RFC3339)) {
		t.Fatalf("expiry event %q does not name %v", msg, ext.ExpiresAt)
	}
	testutil.Eventually(t, 10*time.Second, "the expired vm's qemu gone", func() bool { return !alive(pid) })
	if _, err := os.Stat(filepath.Join(v.DataDir, "vms", short.OwnerID, short.ID)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("files of the expired vm left: %v", err)
	}
	if u := usage(t, c); u != (api.Quota{}) {
		t.Fatalf("usage after expiry: %+v", u)
	}

	// vmd is stopped across the deadline.
	c.must(0, "", "create", "down", "--template", "tiny", "--memory", "128", "--ttl", "30s", "--wait", "--timeout", "2m")
	down := getVM(t, c, "down")
	pid = v.pid(t, down)
	v.stop()
	testutil.Eventually(t, time.Minute, "the deadline passes while vmd is down", func() bool { return time.Now().After(*down.ExpiresAt) })
	if !alive(pid) {
		t.Fatal("the guest died with vmd")
	}
	v.start()
	started := time.Now()
	c.must(0, "", "wait", "down", "--for", "delete", "--timeout", "60s")
	t.Logf("expiry while down: gone %s after vmd was ready again", time.Since(started).Round(time.Millisecond))
	testutil.Eventually(t, 10*time.Second, "qemu of the vm that expired while vmd was down gone", func() bool { return !alive(pid) })
	if _, err := os.Stat(filepath.Join(v.DataDir, "vms", down.OwnerID, down.ID)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("files of the vm that expired while vmd was down left: %v", err)
	}
	if u := usage(t, c); u != (api.Quota{}) {
		t.Fatalf("usage after expiry: %+v", u)
	}
	expiryEvent(t, ada, down.ID)

	// The operator caps ada's VM lifetimes.
	if out, code := v.admin(t, "", "user", "set-quota", "ada@example.com", "--max-ttl", "1h"); code != 0 || !strings.Contains(out, "max_ttl=1h0m0s") {
		t.Fatalf("set-quota --max-ttl: %d %s", code, out)
	}
	_, errOut, code = c.run("", "create", "long", "--template", "tiny", "--ttl", "2h")
	if code != 1 || !strings.Contains(errOut, "ttl: must be at most 1h0m0s") {
		t.Fatalf("ttl above the maximum: exit %d, %s", code, errOut)
	}
	var capped api.VM
	if err := json.Unmarshal([]byte(c.must(0, "", "create", "capped", "--template", "tiny", "-o", "json")), &capped); err != nil {
		t.Fatal(err)
	}
	if capped.ExpiresAt == nil || capped.ExpiresAt.Sub(capped.CreatedAt) != time.Hour {
		t.Fatalf("a vm created without ttl under a 1h maximum: expires %v", capped.ExpiresAt)
	}
	_, errOut, code = c.run("", "extend", "capped", "3h")
	if code != 1 || !strings.Contains(errOut, "at most 1h0m0s") {
		t.Fatalf("extend above the maximum: exit %d, %s", code, errOut)
	}
	c.must(0, "", "delete", "capped", "--yes", "--wait", "--timeout", "60s")
}
