//go:build debianimage

// The Debian template boots for minutes under TCG, so this test is not part
// of `make test`: `make test-debian-image` builds the image and runs it.

package e2e

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/vm/vmtest"
)

// TestDebianImageCloudInit boots images/debian-12.qcow2 with plain QEMU, a
// restrict=on NIC and the guest agent's port, and a NoCloud seed whose
// #cloud-config has ssh_authorized_keys, write_files and runcmd: the real
// cloud-init must apply all three (checked through SSH as the default user,
// with the host key cloud-init prints on the console) and qemu-ga answers.
func TestDebianImageCloudInit(t *testing.T) {
	t.Parallel()
	img := vmtest.DebianImage(t)
	key, signer := sshKey(t)
	seed := map[string]string{
		"meta-data": "instance-id: i-debian\nlocal-hostname: deb-test\n",
		"user-data": "#cloud-config\n" +
			"ssh_authorized_keys:\n  - " + key + "\n" +
			"write_files:\n  - path: /etc/vmd-test/written\n    content: |\n      written by cloud-init\n    permissions: '0640'\n" +
			"runcmd:\n  - [ sh, -c, 'echo runcmd-$(hostname) > /run/marker' ]\n",
	}
	g := bootPlain(t, img, bootOpts{seed: seed, memMB: 1024})

	addr := "127.0.0.1:" + g.SSHPort
	testutil.Eventually(t, 10*time.Minute, "ssh into the Debian guest", func() bool {
		if _, err := sshBanner(addr); err != nil {
			return false
		}
		_, err := sshRun(addr, "debian", signer, debianHostKeys(g), "true")
		return err == nil
	})

	toSSH := time.Since(g.Started)
	// runcmd runs in cloud-init's config stage, after sshd is up. Waited for
	// on the console (cloud-init's final line), not by logging in over and
	// over: under TCG every SSH login (kex, PAM, sudo) is CPU the guest's
	// cloud-init stages then lack (polled logins stretched runcmd by minutes).
	g.waitSerial(`Cloud-init v\. \S+ finished at`, 10*time.Minute)
	toFinal := time.Since(g.Started)
	out, err := sshRun(addr, "debian", signer, debianHostKeys(g), "cat /run/marker && sudo cat /etc/vmd-test/written && stat -c %a /etc/vmd-test/written")
	if err != nil {
		t.Fatalf("ssh cat /run/marker, the written file and its mode: %v", err)
	}
	want := "runcmd-deb-test\nwritten by cloud-init\n640\n"
	if out != want {
		t.Fatalf("runcmd marker, write_files file and its mode over ssh: %q, want %q", out, want)
	}
	t.Logf("Debian template under TCG: QEMU start to the first command run over SSH %.1f s, to cloud-init finished (runcmd done) %.1f s",
		toSSH.Seconds(), toFinal.Seconds())

	q := dialQGA(t, g.QGA, time.Minute)
	if err := q.do("guest-ping", nil, nil); err != nil {
		t.Fatal(err)
	}
	if code, out := q.exec(t, "/bin/cat", "/run/marker"); code != 0 || out != "runcmd-deb-test\n" {
		t.Fatalf("guest-exec cat /run/marker: exit %d, %q", code, out)
	}
	if err := q.do("guest-shutdown", nil, nil); err != nil {
		t.Fatal(err)
	}
	asked := time.Now()
	g.waitExit(2 * time.Minute)
	t.Logf("guest-shutdown to QEMU exit: %.1f s", time.Since(asked).Seconds())
}

// debianHostKeys are the keys cloud-init prints between its "BEGIN SSH HOST
// KEY KEYS" markers on the serial console ("" until it has).
func debianHostKeys(g *plainGuest) []string {
	b, _ := os.ReadFile(g.Serial)
	m := regexp.MustCompile(`(?s)-----BEGIN SSH HOST KEY KEYS-----(.*?)-----END SSH HOST KEY KEYS-----`).FindSubmatch(b)
	if m == nil {
		return nil
	}
	var keys []string
	for _, l := range strings.Split(string(m[1]), "\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			keys = append(keys, f[0]+" "+f[1])
		}
	}
	return keys
}
