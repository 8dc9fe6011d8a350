package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// TestSSHKeysTinyVM: a key added with vmctl ssh-key and one given to
// create --ssh-key reach the new VM's seed meta-data (public-keys), and
// the host keys the guest prints on its serial console appear in the VM's
// ssh_host_keys, equal to what it printed.
func TestSSHKeysTinyVM(t *testing.T) {
	parallel(t, 1)
	v := startVMD(t, storetest.Backends()[0])
	c := loggedIn(t, v, "ada@example.com")
	dir := t.TempDir()
	stored, _ := sshKey(t)
	extra, _ := sshKey(t)
	storedFile, extraFile := filepath.Join(dir, "id_ed25519.pub"), filepath.Join(dir, "ci.pub")
	if err := os.WriteFile(storedFile, []byte(stored+" ada@laptop\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(extraFile, []byte(extra+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.must(0, "", "ssh-key", "add", "--name", "laptop", storedFile)
	var keys []api.SSHKey
	if err := json.Unmarshal([]byte(c.must(0, "", "ssh-key", "list", "-o", "json")), &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].Name != "laptop" || !strings.HasPrefix(keys[0].Fingerprint, "SHA256:") {
		t.Fatalf("ssh-key list = %+v", keys)
	}
	// A key that does not parse: exit code of a validation error, the field named.
	if _, errOut, code := c.run("not a key\n", "ssh-key", "add", "-"); code == 0 || !strings.Contains(errOut, "key") {
		t.Fatalf("bad key: exit %d, %s", code, errOut)
	}

	c.must(0, "", "create", "web", "--template", "tiny", "--memory", "128", "--ssh-key", extraFile, "--wait", "--timeout", "2m")
	vm := getVM(t, c, "web")
	meta, err := exec.Command("isoinfo", "-R", "-i", v.vmFile(vm, "seed.iso"), "-x", "/meta-data").Output()
	if err != nil {
		t.Fatalf("read seed meta-data: %v", err)
	}
	if want := "public-keys:\n  - " + stored + "\n  - " + extra + "\n"; !strings.Contains(string(meta), want) {
		t.Fatalf("seed meta-data:\n%s\nwant it to hold\n%s", meta, want)
	}
	// The key deleted later stays with the VM made before.
	c.must(0, "", "ssh-key", "delete", "laptop")
	if out := c.must(0, "", "ssh-key", "list", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Fatalf("keys after delete: %q", out)
	}

	// The guest prints one line per key, then its done line (seconds apart under load).
	v.waitSerial(t, vm, "vmd-tiny: hostkeys done", 3*time.Minute)
	start := time.Now()
	b, err := os.ReadFile(v.vmFile(vm, "serial.log"))
	if err != nil {
		t.Fatal(err)
	}
	printed := hostKeyLines(b)
	if len(printed) != 2 {
		t.Fatalf("the guest printed %d host keys before its done line, want 2: %q", len(printed), printed)
	}
	var got []string
	testutil.Eventually(t, 60*time.Second, "ssh_host_keys in the VM JSON equal to what the guest printed", func() bool {
		got = getVM(t, c, "web").SSHHostKeys
		return slices.Equal(got, printed)
	})
	t.Logf("ssh_host_keys in the VM JSON %.1f s after the guest printed them", time.Since(start).Seconds())
	c.must(0, "", "delete", "web", "--yes")
}
