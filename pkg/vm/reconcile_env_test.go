package vm_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/qemu"
	"github.com/vmdhq/vmd/pkg/vm/vmtest"
)

// tinyImage is the test template (built by make if missing).
func tinyImage(t testing.TB) string { return vmtest.TinyImage(t) }

// templates serves one template, the tiny image, as pkg/image would.
type templates struct{ path string }

func (tp templates) List(ctx context.Context) ([]api.Template, error) {
	t, err := tp.Get(ctx, "tiny")
	return []api.Template{t}, err
}

func (tp templates) Get(_ context.Context, name string) (api.Template, error) {
	if name != "tiny" {
		return api.Template{}, store.ErrNotFound
	}
	return api.Template{Name: "tiny"}, nil
}

func (tp templates) Verify(ctx context.Context, name string) (string, error) {
	_, err := tp.Get(ctx, name)
	return tp.path, err
}

// testLayout makes data and run dirs QEMU's unprivileged user can reach.
func testLayout(t testing.TB) vm.Layout {
	t.Helper()
	mk := func(pattern string) string {
		d, err := os.MkdirTemp("", pattern)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return vm.Layout{DataDir: mk("vmd-data-"), RunDir: mk("vmd-run-")}
}

// node is one running vmd's VM half: driver, reconciler and service.
type node struct {
	drv    *qemu.Driver
	rec    *vm.Reconciler
	svc    *vm.Service
	cancel context.CancelFunc
	done   chan struct{}
}

func startNode(t *testing.T, st store.Store, l vm.Layout, base string, policy vm.RestartPolicy) *node {
	t.Helper()
	return startNodeWith(t, st, l, base, policy, nil)
}

// startNodeWith is startNode with the reconciler's driver wrapped by wrap (nil: none).
func startNodeWith(t *testing.T, st store.Store, l vm.Layout, base string, policy vm.RestartPolicy,
	wrap func(*qemu.Driver) vm.Driver) *node {
	t.Helper()
	drv, err := qemu.New(qemu.Config{Layout: l, Accel: "tcg", StopTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var d vm.Driver = drv
	if wrap != nil {
		d = wrap(drv)
	}
	// Guests outlive their driver by design; a failed test must not leave
	// them running. Registered before shutdown, so it runs after it.
	t.Cleanup(func() { destroyAll(t, st, l) })
	rec := vm.NewReconciler(vm.ReconcilerConfig{Store: st, Driver: d, Node: "n1", Layout: l,
		Interval: time.Second, RestartPolicy: policy, MaxRestarts: 3, RestartWindow: time.Minute})
	svc := vm.NewService(vm.ServiceConfig{Store: st, Templates: templates{base}, Provisioner: rec,
		Kicker: rec, Node: "n1"})
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{drv: drv, rec: rec, svc: svc, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(n.done); _ = rec.Run(ctx) }()
	t.Cleanup(n.shutdown)
	return n
}

// shutdown stops the reconciler and drops QMP connections; guests keep running.
func (n *node) shutdown() {
	n.cancel()
	<-n.done
	n.drv.Close()
}

func newUser(t *testing.T, st store.Store) store.User {
	t.Helper()
	u := store.User{ID: "u_" + strings.ToLower(strconv.FormatInt(time.Now().UnixNano(), 36)),
		Email: strconv.FormatInt(time.Now().UnixNano(), 10) + "@example.com", Verified: true,
		Quota:     api.Quota{VMs: 10, CPUs: 10, MemoryMB: 4096, DiskGB: 100},
		CreatedAt: time.Now().UTC()}
	if err := st.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	return storetest.Backends()[0].Open(t) // SQLite; the store's own tests cover PostgreSQL
}

func create(t *testing.T, n *node, u store.User, name string) api.VM {
	t.Helper()
	v, err := n.svc.Create(context.Background(), u.ID, api.CreateVMRequest{Name: name, Template: "tiny", MemoryMB: 128})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func waitState(t *testing.T, st store.Store, id string, want api.State, limit time.Duration) store.VM {
	t.Helper()
	var v store.VM
	var err error
	if !testutil.WaitFor(limit, func() bool {
		v, err = st.GetVM(context.Background(), id)
		return err == nil && v.State == want
	}) {
		t.Fatalf("vm %s: state %q (%s, err %v) after %v, want %q", id, v.State, v.Message, err, limit, want)
	}
	return v
}

// waitCond waits for cond, failing the test after limit.
func waitCond(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, limit, what, cond)
}

func waitGone(t *testing.T, st store.Store, id string, limit time.Duration) {
	t.Helper()
	testutil.Eventually(t, limit, "vm "+id+" to be gone from the store", func() bool {
		_, err := st.GetVM(context.Background(), id)
		return errors.Is(err, store.ErrNotFound)
	})
}

func waitSerial(t *testing.T, path, line string, limit time.Duration) {
	t.Helper()
	if !testutil.WaitFor(limit, func() bool { b, _ := os.ReadFile(path); return bytes.Contains(b, []byte(line)) }) {
		b, _ := os.ReadFile(path)
		t.Fatalf("no %q in %s after %v:\n%s", line, path, limit, b)
	}
}

func waitPID(t *testing.T, d *qemu.Driver, id string, cond func(int) bool, limit time.Duration) int {
	t.Helper()
	var p int
	if !testutil.WaitFor(limit, func() bool { p = d.PID(id); return cond(p) }) {
		t.Fatalf("vm %s: pid %d does not hold after %v", id, d.PID(id), limit)
	}
	return p
}

func processGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}

func assertNoFiles(t *testing.T, l vm.Layout, owner, id string) {
	t.Helper()
	for _, p := range []string{l.VMDir(owner, id), l.RuntimeDir(id)} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind (%v)", p, err)
		}
	}
}

func fileSHA(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// destroyAll kills and removes every VM still recorded, through a fresh driver.
func destroyAll(t *testing.T, st store.Store, l vm.Layout) {
	d, err := qemu.New(qemu.Config{Layout: l, Accel: "tcg"})
	if err != nil {
		t.Error(err)
		return
	}
	defer d.Close()
	vms, err := st.ListVMs(context.Background(), "")
	if err != nil {
		t.Error(err)
		return
	}
	for _, v := range vms {
		if err := d.Destroy(context.Background(), vm.SpecOf(v)); err != nil {
			t.Error(err)
		}
	}
}
