package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm"
)

// TestCreateInterruptedByVMDCrash: vmd is killed (-9) while a create
// makes the VM's files. What that leaves, a record still provisioning and
// an overlay made as root that the QEMU user cannot open, is rolled back
// by the next vmd, and a VM directory that no record owns is removed
// (defects 6 and 4). The kill's window is a few milliseconds, so the test
// kills vmd and then lays out exactly what it leaves, on the real store.
func TestCreateInterruptedByVMDCrash(t *testing.T) {
	parallel(t, 1)
	v := startVMD(t, storetest.Backends()[0])
	c := loggedIn(t, v, "ada@example.com")
	var me api.User
	if err := json.Unmarshal([]byte(c.must(0, "", "me", "-o", "json")), &me); err != nil {
		t.Fatal(err)
	}
	v.kill()

	ctx := context.Background()
	st, err := store.Open(ctx, "", filepath.Join(v.DataDir, "vmd.db"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Minute).UTC()
	half := store.VM{ID: vm.NewID(), OwnerID: me.ID, Name: "half", Template: "tiny", CPU: 1, MemoryMB: 128, DiskGB: 1,
		State: api.StateProvisioning, Desired: api.DesiredRunning, Node: nodeName(t), CreatedAt: at, UpdatedAt: at}
	err = st.CreateVM(ctx, half)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	dirs := []string{filepath.Join(v.DataDir, "vms", me.ID, half.ID), filepath.Join(v.DataDir, "vms", me.ID, vm.NewID())}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
			filepath.Join(v.DataDir, "images", "tiny.qcow2"), filepath.Join(d, "disk.qcow2")).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img create: %v %s", err, out)
		}
	}

	v.start()
	testutil.Eventually(t, 30*time.Second, "the interrupted create rolled back", func() bool {
		_, _, code := c.run("", "get", "half")
		return code == 3
	})

	testutil.Eventually(t, 30*time.Second, "both VM directories removed", func() bool {
		for _, d := range dirs {
			if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
				return false
			}
		}
		return true
	})

	if err := json.Unmarshal([]byte(c.must(0, "", "me", "-o", "json")), &me); err != nil {
		t.Fatal(err)
	}
	if me.Usage != (api.Quota{}) {
		t.Fatalf("usage after the rollback: %+v", me.Usage)
	}
	for _, want := range []string{"rolling back a create interrupted by a vmd restart", "garbage: removed a vm directory no record owns"} {
		if !strings.Contains(v.log.String(), want) {
			t.Errorf("vmd log does not say %q", want)
		}
	}
	// The same create works now.
	c.must(0, "", "create", "half", "--template", "tiny", "--memory", "128")
	c.must(0, "", "delete", "half", "--yes", "--wait", "--timeout", "60s")
}

// nodeName is the node name vmd takes by default: the host name.
func nodeName(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}
