package vm_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/qemu"
)

// gatedDriver holds Provision until the test opens the gate and counts Destroys.
type gatedDriver struct {
	*qemu.Driver
	entered  chan struct{}
	gate     chan struct{}
	once     sync.Once
	destroys atomic.Int32
}

func (g *gatedDriver) Provision(ctx context.Context, v vm.GuestSpec, base string) error {
	g.once.Do(func() { close(g.entered) })
	<-g.gate
	return g.Driver.Provision(ctx, v, base)
}

func (g *gatedDriver) Destroy(ctx context.Context, v vm.GuestSpec) error {
	g.destroys.Add(1)
	return g.Driver.Destroy(ctx, v)
}

// TestDeleteWhileProvisioning: a VM deleted while its create is making
// its files leaves neither record nor files nor usage (defect 4: its
// overlay stayed, the record gone).
func TestDeleteWhileProvisioning(t *testing.T) {
	t.Parallel()
	base := tinyImage(t)
	st := openStore(t)
	l := testLayout(t)
	g := &gatedDriver{entered: make(chan struct{}), gate: make(chan struct{})}
	n := startNodeWith(t, st, l, base, vm.RestartAlways, func(d *qemu.Driver) vm.Driver { g.Driver = d; return g })
	u := newUser(t, st)
	ctx := context.Background()

	created := make(chan error, 1)
	go func() {
		_, err := n.svc.Create(ctx, u.ID, api.CreateVMRequest{Name: "doomed", Template: "tiny", MemoryMB: 128})
		created <- err
	}()
	<-g.entered
	v, err := st.GetVMByName(ctx, u.ID, "doomed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.svc.Delete(ctx, u, "doomed"); err != nil {
		t.Fatal(err)
	}
	// The delete pass has either run (it must not have removed the record
	// under the create's feet) or waits for the VM behind the create.
	waitCond(t, "the delete pass ran or is queued", 10*time.Second, func() bool {
		return g.destroys.Load() > 0 || n.rec.LockWaiters(v.ID) >= 2
	})
	close(g.gate)
	if err := <-created; !errors.Is(err, vm.ErrConflict) {
		t.Errorf("create of a VM deleted meanwhile: %v, want a conflict", err)
	}
	waitGone(t, st, v.ID, 30*time.Second)
	assertNoFiles(t, l, u.ID, v.ID)
	if got, _ := st.GetUser(ctx, u.ID); got.Usage != (api.Quota{}) {
		t.Errorf("usage after the delete: %+v", got.Usage)
	}
}

// TestInterruptedProvisioningRolledBack: what a vmd killed during a
// create leaves (a record still provisioning, an overlay made as root and
// never handed to the QEMU user) is rolled back by the next vmd, not
// launched into an error (defect 6: "fork/exec … permission denied").
func TestInterruptedProvisioningRolledBack(t *testing.T) {
	t.Parallel()
	base := tinyImage(t)
	st := openStore(t)
	l := testLayout(t)
	u := newUser(t, st)
	ctx := context.Background()
	at := time.Now().Add(-time.Minute).UTC()
	v := store.VM{ID: vm.NewID(), OwnerID: u.ID, Name: "half", Template: "tiny", CPU: 1, MemoryMB: 128, DiskGB: 1,
		State: api.StateProvisioning, Desired: api.DesiredRunning, Node: "n1", CreatedAt: at, UpdatedAt: at}
	if err := st.CreateVM(ctx, v); err != nil {
		t.Fatal(err)
	}
	mkVMDir(t, l.VMDir(u.ID, v.ID))
	disk := l.VMFile(u.ID, v.ID, vm.DiskFile)
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, disk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v %s", err, out)
	}

	startNode(t, st, l, base, vm.RestartAlways)
	waitGone(t, st, v.ID, 30*time.Second)
	assertNoFiles(t, l, u.ID, v.ID)
	if got, _ := st.GetUser(ctx, u.ID); got.Usage != (api.Quota{}) {
		t.Errorf("usage after the rollback: %+v", got.Usage)
	}
	changes, err := st.ListChanges(ctx, u.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var said []string
	for _, c := range changes {
		said = append(said, string(c.State)+": "+c.Message)
	}
	if got := strings.Join(said, "; "); !strings.Contains(got, "interrupted by a vmd restart") || strings.Contains(got, "starting") {
		t.Errorf("change feed of the rolled back VM: %s", got)
	}
}

// TestGarbageDirsRemovedOnStart: on start the reconciler removes the VM
// directories no record owns and keeps those that have one.
func TestGarbageDirsRemovedOnStart(t *testing.T) {
	t.Parallel()
	base := tinyImage(t)
	st := openStore(t)
	l := testLayout(t)
	u := newUser(t, st)
	ctx := context.Background()
	kept := store.VM{ID: "vm_0kept", OwnerID: u.ID, Name: "kept", Template: "tiny", CPU: 1, MemoryMB: 128, DiskGB: 1,
		State: api.StateStopped, Desired: api.DesiredStopped, Node: "n1"}
	if err := st.CreateVM(ctx, kept); err != nil {
		t.Fatal(err)
	}
	// ReadDir sorts by name: the last orphan is looked at after everything else.
	orphans := []string{l.VMDir(u.ID, "vm_zorphan"), l.VMDir("zz_gone_owner", "vm_zorphan2")}
	for _, d := range append(orphans, l.VMDir(u.ID, kept.ID)) {
		mkVMDir(t, d)
		if err := os.WriteFile(filepath.Join(d, vm.DiskFile), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	startNode(t, st, l, base, vm.RestartAlways)
	// The gone owner's directory, emptied, goes right after its VM's
	// (Destroy removes it second), so it is waited for too.
	waitCond(t, "orphan directories and the gone owner's empty directory removed", 30*time.Second, func() bool {
		for _, d := range append(orphans, filepath.Dir(orphans[1])) {
			if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
				return false
			}
		}
		return true
	})
	if _, err := os.Stat(l.VMFile(u.ID, kept.ID, vm.DiskFile)); err != nil {
		t.Errorf("a recorded VM's files were removed: %v", err)
	}
}

// mkVMDir makes a VM directory as the driver does: its parents passable by
// the QEMU user, itself private.
func mkVMDir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(filepath.Dir(dir)), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}
