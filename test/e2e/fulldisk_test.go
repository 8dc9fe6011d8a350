package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// TestFullDisk: with the data dir's file system full, a create is refused
// with insufficient_storage and leaves no record, file or usage behind;
// once there is room again the same create works.
func TestFullDisk(t *testing.T) {
	parallel(t, 1)
	mnt := filepath.Join(t.TempDir(), "fs")
	testutil.OpenParents(t, mnt)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=160m,mode=0711", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount a small tmpfs for the data dir (the tests run as root): %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
	dataDir := filepath.Join(mnt, "data")
	v := startVMD(t, storetest.Backend{Name: "sqlite", New: func(testing.TB) (string, string) {
		return "", filepath.Join(dataDir, "vmd.db")
	}}, "--node-disk-gb", "100") // placement counts the sizes VMs may grow to; this test is about the bytes free now
	c := loggedIn(t, v, "ada@example.com")

	// Fill the file system, leaving less than an overlay needs.
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for written := int64(0); written < free-(8<<20); written += int64(len(chunk)) {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()

	_, errOut, code := c.run("", "create", "web", "--template", "tiny", "--memory", "128")
	if code != 1 || !strings.Contains(errOut, "no room") {
		t.Fatalf("create on a full disk: exit %d: %s", code, errOut)
	}
	if out := strings.TrimSpace(c.must(0, "", "list", "-o", "name")); out != "" {
		t.Fatalf("half-created VM listed: %q", out)
	}
	owners, _ := os.ReadDir(filepath.Join(dataDir, "vms"))
	for _, o := range owners {
		if vms, _ := os.ReadDir(filepath.Join(dataDir, "vms", o.Name())); len(vms) != 0 {
			t.Fatalf("leftover VM directory under %s", o.Name())
		}
	}
	var me api.User
	if err := json.Unmarshal([]byte(c.must(0, "", "me", "-o", "json")), &me); err != nil {
		t.Fatal(err)
	}
	if me.Usage != (api.Quota{}) {
		t.Fatalf("quota drift after a refused create: %+v", me.Usage)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	c.must(0, "", "create", "web", "--template", "tiny", "--memory", "128")
	c.must(0, "", "delete", "web", "--yes", "--wait", "--timeout", "60s")
}
