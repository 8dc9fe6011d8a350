//go:build debianimage

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm/vmtest"
)

// TestDebianImageThroughVMD creates a VM from the debian-12 template
// through vmd, with a key added through the API and a #cloud-config using
// runcmd and write_files, and checks that Debian's real cloud-init
// consumed vmd's seed: the meta-data key is in the default user's
// authorized_keys, runcmd ran, write_files wrote, and vmd learnt the host
// keys cloud-init printed. The guest reports through its serial console
// (its own runcmd prints what it finds), so the test needs neither the
// guest network nor the agent to be wired in vmd.
func TestDebianImageThroughVMD(t *testing.T) {
	img := vmtest.DebianImage(t)
	v := startVMD(t, storetest.Backends()[0])
	if out, code := v.admin(t, "", "image", "import", "debian-12", img); code != 0 {
		t.Fatalf("vmd image import debian-12: %d %s", code, out)
	}
	c := loggedIn(t, v, "deb@example.com")
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

	key, _ := sshKey(t)
	keyFile := filepath.Join(t.TempDir(), "id_ed25519.pub")
	if err := os.WriteFile(keyFile, []byte(key+" deb@laptop\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.must(0, "", "ssh-key", "add", keyFile)
	// The user-data's own runcmd reports on the console what cloud-init did.
	userData := "#cloud-config\n" +
		"write_files:\n  - path: /etc/vmd-test/written\n    content: |\n      written by cloud-init\n    permissions: '0640'\n" +
		"runcmd:\n" +
		"  - [ sh, -c, 'echo runcmd-$(hostname) > /run/marker' ]\n" +
		"  - [ sh, -c, 'for f in /run/marker /etc/vmd-test/written /home/debian/.ssh/authorized_keys; do sed \"s|^|vmd-e2e: $f: |\" $f; done > /dev/ttyS0; stat -c \"vmd-e2e: mode %a\" /etc/vmd-test/written > /dev/ttyS0' ]\n"
	udFile := filepath.Join(t.TempDir(), "user-data")
	if err := os.WriteFile(udFile, []byte(userData), 0o600); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	c.must(0, "", "create", "deb", "--template", "debian-12", "--userdata", udFile)
	vm := getVM(t, c, "deb")
	if vm.MemoryMB != 1024 {
		t.Fatalf("memory %d MB, want the template's minimum 1024", vm.MemoryMB)
	}
	v.waitSerial(t, vm, "vmd-e2e: mode ", 12*time.Minute)
	done := time.Since(created)
	// keys_to_console runs in cloud-final after scripts_user (runcmd); "finished at" ends cloud-final.
	v.waitSerial(t, vm, "-----END SSH HOST KEY KEYS-----", 5*time.Minute)
	v.waitSerial(t, vm, " finished at ", 5*time.Minute)
	finished := time.Since(created)
	b, err := os.ReadFile(v.vmFile(vm, "serial.log"))
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	for _, want := range []string{
		"vmd-e2e: /run/marker: runcmd-deb\r?\n",
		"vmd-e2e: /etc/vmd-test/written: written by cloud-init\r?\n",
		"vmd-e2e: /home/debian/.ssh/authorized_keys: " + regexp.QuoteMeta(key) + "\\b",
		"vmd-e2e: mode 640\r?\n",
	} {
		if !regexp.MustCompile(want).MatchString(log) {
			t.Errorf("serial log lacks %q", want)
		}
	}
	printed := debianHostKeysIn(log)
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
	t.Logf("debian-12 through vmd under TCG: create to runcmd done %.1f s, to cloud-init finished %.1f s",
		done.Seconds(), finished.Seconds())
	c.must(0, "", "delete", "deb", "--yes")
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
