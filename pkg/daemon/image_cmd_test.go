package daemon

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmdhq/vmd/pkg/image"
)

// TestImageImportProps: --ssh-user and --min-memory-mb are recorded and
// shown by the catalog; without them the built-in properties of the name hold.
func TestImageImportProps(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "src.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", src, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, out)
	}
	run := func(args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		if code := Main(append(args, "--data-dir", dir), strings.NewReader(""), &out, &errb); code != 0 {
			t.Fatalf("vmd %v: exit %d: %s", args, code, errb.String())
		}
	}
	run("image", "import", "ubu", src, "--ssh-user", "ubuntu", "--min-memory-mb", "2048")
	run("image", "import", "debian-12", src)
	c := image.NewCatalog(filepath.Join(dir, "images"))
	ubu, err := c.Get(context.Background(), "ubu")
	if err != nil || ubu.SSHUser != "ubuntu" || ubu.MinMemoryMB != 2048 {
		t.Fatalf("ubu = %+v, %v", ubu, err)
	}
	deb, err := c.Get(context.Background(), "debian-12")
	if err != nil || deb.SSHUser != "debian" || deb.MinMemoryMB != 1024 {
		t.Fatalf("debian-12 = %+v, %v", deb, err)
	}
}
