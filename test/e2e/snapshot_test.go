package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/rfb"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// serialCount is how often line occurs in the VM's serial log.
func (v *vmd) serialCount(vm api.VM, line string) int {
	b, _ := os.ReadFile(v.vmFile(vm, "serial.log"))
	return strings.Count(string(b), line)
}

// waitSerialCount waits until line occurs n times in the VM's serial log.
func (v *vmd) waitSerialCount(t *testing.T, vm api.VM, line string, n int, timeout time.Duration) {
	t.Helper()
	if testutil.WaitFor(timeout, func() bool { return v.serialCount(vm, line) >= n }) {
		return
	}
	b, _ := os.ReadFile(v.vmFile(vm, "serial.log"))
	t.Fatalf("%s: %q not %d times in serial.log within %s:\n%s", vm.Name, line, n, timeout, b)
}

// diskSnapshots is what qemu-img says the VM's overlay holds.
func (v *vmd) diskSnapshots(t *testing.T, vm api.VM) []string {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "-U", "--output=json", v.vmFile(vm, "disk.qcow2")).Output()
	if err != nil {
		t.Fatalf("qemu-img info: %v", err)
	}
	var info struct {
		Snapshots []struct {
			Name string `json:"name"`
		} `json:"snapshots"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, s := range info.Snapshots {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names
}

func listSnapshots(t *testing.T, c *cli, name string) []api.Snapshot {
	t.Helper()
	var out []api.Snapshot
	if err := json.Unmarshal([]byte(c.must(0, "", "snapshot", "list", name, "-o", "json")), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func snapshotNames(sns []api.Snapshot) []string {
	names := []string{}
	for _, s := range sns {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names
}

func me(t *testing.T, c *cli) api.User {
	t.Helper()
	var u api.User
	if err := json.Unmarshal([]byte(c.must(0, "", "me", "-o", "json")), &u); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestSnapshotRestoreAndClone: a disk snapshot of a running guest after
// boot 1, boot 2, restore (the running VM restarts on it), and the next boot
// is boot 2 again; a clone of the snapshot boots as boot 2 too and still
// boots once its source is deleted; bad names, duplicates, missing
// snapshots and the disk quota are refused; records match the qcow2 file.
func TestSnapshotRestoreAndClone(t *testing.T) {
	parallel(t, 1)
	v := startVMD(t, storetest.Backends()[0])
	c := loggedIn(t, v, "ada@example.com")
	c.must(0, "", "create", "web", "--template", "tiny", "--memory", "128", "--wait", "--timeout", "2m")
	vm := getVM(t, c, "web")
	v.waitSerial(t, vm, "vmd-tiny: boot 1", 90*time.Second)
	v.waitSerial(t, vm, "vmd-tiny: booted", 30*time.Second)
	// The tiny image has a guest agent: once it answers, a running guest's
	// disk snapshot is taken with its file systems frozen.
	c.must(0, "", "wait", "web", "--for", "condition=ready", "--timeout", "2m")

	var sn api.Snapshot
	if err := json.Unmarshal([]byte(c.must(0, "", "snapshot", "create", "web", "s1", "-o", "json")), &sn); err != nil {
		t.Fatal(err)
	}
	if sn.Name != "s1" || sn.Consistency != api.ConsistencyFrozen || sn.Memory || sn.SizeGB != 1 {
		t.Fatalf("snapshot of a running guest with an agent: %+v", sn)
	}
	_, errOut, code := c.run("", "snapshot", "create", "web", "s1")
	if code != 5 || !strings.Contains(errOut, "already has a snapshot named s1") {
		t.Fatalf("duplicate snapshot: exit %d, %s", code, errOut)
	}
	if _, errOut, code = c.run("", "snapshot", "create", "web", "Bad_Name"); code != 1 || !strings.Contains(errOut, "name") {
		t.Fatalf("bad snapshot name: exit %d, %s", code, errOut)
	}
	if _, errOut, code = c.run("", "snapshot", "restore", "web", "nope"); code != 3 || !strings.Contains(errOut, "no snapshot named nope") {
		t.Fatalf("restore of a missing snapshot: exit %d, %s", code, errOut)
	}
	if got := me(t, c).Usage.DiskGB; got != 2 {
		t.Fatalf("disk usage with a 1 GB VM and its 1 GB snapshot: %d", got)
	}

	c.must(0, "", "stop", "web")
	c.must(0, "", "wait", "web", "--for", "state=stopped", "--timeout", "60s")
	c.must(0, "", "start", "web")
	v.waitSerial(t, vm, "vmd-tiny: boot 2", 90*time.Second)
	c.must(0, "", "wait", "web", "--for", "state=running", "--timeout", "60s")

	// Restore of the running VM: it restarts on the snapshot's disk (counter 1).
	c.must(0, "", "snapshot", "restore", "web", "s1")
	v.waitSerialCount(t, vm, "vmd-tiny: boot 2", 2, 90*time.Second)
	c.must(0, "", "wait", "web", "--for", "state=running", "--timeout", "60s")
	if n := v.serialCount(vm, "vmd-tiny: boot 3"); n != 0 {
		t.Fatalf("boot 3 after restoring the boot-1 snapshot")
	}
	got := getVM(t, c, "web")
	if len(got.Snapshots) != 1 || got.Snapshots[0].Name != "s1" {
		t.Fatalf("get shows snapshots %+v", got.Snapshots)
	}
	if y := c.must(0, "", "get", "web", "-o", "yaml"); !strings.Contains(y, "snapshots:") || !strings.Contains(y, "name: s1") {
		t.Fatalf("get -o yaml lacks the snapshot:\n%s", y)
	}
	if d, l := v.diskSnapshots(t, vm), snapshotNames(listSnapshots(t, c, "web")); strings.Join(d, ",") != "s1" || strings.Join(l, ",") != "s1" {
		t.Fatalf("qcow2 snapshots %v, listed %v", d, l)
	}

	// A clone of the snapshot starts from counter 1 too.
	c.must(0, "", "create", "copy", "--from", "web@s1", "--wait", "--timeout", "2m")
	cp := getVM(t, c, "copy")
	if cp.Template != "tiny" || cp.MemoryMB != 128 || cp.DiskGB != 1 {
		t.Fatalf("clone did not take its source's template and sizes: %+v", cp)
	}
	v.waitSerial(t, cp, "vmd-tiny: boot 2", 90*time.Second)
	if d := v.diskSnapshots(t, cp); len(d) != 0 {
		t.Fatalf("the clone's disk holds its source's snapshots: %v", d)
	}
	// The source goes; the clone does not need it.
	c.must(0, "", "delete", "web", "--yes")
	c.must(0, "", "wait", "web", "--for", "delete", "--timeout", "60s")
	if got := me(t, c).Usage; got.VMs != 1 || got.DiskGB != 1 {
		t.Fatalf("usage after deleting the source and its snapshot: %+v", got)
	}
	c.must(0, "", "stop", "copy")
	c.must(0, "", "wait", "copy", "--for", "state=stopped", "--timeout", "60s")
	c.must(0, "", "start", "copy")
	v.waitSerial(t, cp, "vmd-tiny: boot 3", 90*time.Second)
	c.must(0, "", "wait", "copy", "--for", "state=running", "--timeout", "60s")

	// A stopped VM's snapshot is clean; one past the disk quota is refused.
	c.must(0, "", "stop", "copy")
	c.must(0, "", "wait", "copy", "--for", "state=stopped", "--timeout", "60s")
	if err := json.Unmarshal([]byte(c.must(0, "", "snapshot", "create", "copy", "off", "-o", "json")), &sn); err != nil {
		t.Fatal(err)
	}
	if sn.Consistency != api.ConsistencyStopped {
		t.Fatalf("snapshot of a stopped VM: %+v", sn)
	}
	if out, code := v.admin(t, "", "user", "set-quota", "ada@example.com", "--disk-gb", "2"); code != 0 {
		t.Fatalf("set-quota: %d %s", code, out)
	}
	_, errOut, code = c.run("", "snapshot", "create", "copy", "more")
	if code != 5 || !strings.Contains(errOut, "disk: 1 GB asked, 0 GB left of 2") {
		t.Fatalf("snapshot past the disk quota: exit %d, %s", code, errOut)
	}
	if _, errOut, code = c.run("", "snapshot", "create", "copy", "warm", "--memory"); code != 5 || !strings.Contains(errOut, "cannot take a memory snapshot") {
		t.Fatalf("memory snapshot of a stopped VM: exit %d, %s", code, errOut)
	}
	c.must(0, "", "snapshot", "delete", "copy", "off")
	if got := me(t, c).Usage.DiskGB; got != 1 {
		t.Fatalf("disk usage after deleting the snapshot: %d", got)
	}
	if d := v.diskSnapshots(t, cp); len(d) != 0 {
		t.Fatalf("deleted snapshot still in the qcow2 file: %v", d)
	}
}

// keyboard types on a guest's keyboard through its VNC socket.
type keyboard struct {
	t    *testing.T
	conn net.Conn
}

func (v *vmd) keyboard(t *testing.T, vm api.VM) *keyboard {
	t.Helper()
	conn, err := net.Dial("unix", filepath.Join(v.RunDir, vm.ID, "vnc.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := rfb.Handshake(ctx, conn); err != nil {
		t.Fatal(err)
	}
	return &keyboard{t: t, conn: conn}
}

func (k *keyboard) key(sym uint32, down bool) {
	k.t.Helper()
	msg := make([]byte, 8)
	msg[0] = 4 // KeyEvent
	if down {
		msg[1] = 1
	}
	binary.BigEndian.PutUint32(msg[4:], sym)
	if _, err := k.conn.Write(msg); err != nil {
		k.t.Fatal(err)
	}
}

const (
	keyReturn = 0xff0d
	keyUp     = 0xff52
	keyShift  = 0xffe1
)

func (k *keyboard) press(sym uint32) { k.key(sym, true); k.key(sym, false) }

// typeLine types s and Return, holding shift for what needs it on a US keyboard.
func (k *keyboard) typeLine(s string) {
	for _, r := range s {
		if (r >= 'A' && r <= 'Z') || strings.ContainsRune(`~!@#$%^&*()_+{}|:"<>?`, r) {
			k.key(keyShift, true)
			k.press(uint32(r))
			k.key(keyShift, false)
			continue
		}
		k.press(uint32(r))
	}
	k.press(keyReturn)
}

func (k *keyboard) close() { _ = k.conn.Close() }

// TestMemorySnapshot: a memory snapshot of a running guest, then a file
// written to its RAM-only root: restoring the snapshot resumes the guest
// where it was, so the file is gone and the shell's history is as it was
// (Up and Return run the last command typed before the snapshot).
func TestMemorySnapshot(t *testing.T) {
	parallel(t, 1)
	v := startVMD(t, storetest.Backends()[0])
	c := loggedIn(t, v, "ada@example.com")
	c.must(0, "", "create", "mem", "--template", "tiny", "--memory", "128", "--wait", "--timeout", "2m")
	vm := getVM(t, c, "mem")
	v.waitSerial(t, vm, "vmd-tiny: booted", 90*time.Second)
	// The guest makes its SSH host keys after the shell is up, and keys
	// typed while a CPU-starved guest does so are lost (QEMU's PS/2 queue
	// is short; CI saw 60 tries fail under load): type once the last key
	// line is out, as TestBrowserConsoleHeals does.
	v.waitSerial(t, vm, "vmd-tiny: hostkey ecdsa-sha2-nistp256 ", 2*time.Minute)

	kb := v.keyboard(t, vm)
	// The console's shell may not be up yet: type until it answers.
	for i := 0; v.serialCount(vm, "hist42") == 0; i++ {
		if i == 60 {
			t.Fatal("the console shell never ran the typed command")
		}
		kb.typeLine("touch /root/before; echo hist$((6*7)) >/dev/ttyS0")
		v.serialHas(vm, "hist42", 2*time.Second)
	}
	kb.close()
	hist := v.serialCount(vm, "hist42")

	var sn api.Snapshot
	if err := json.Unmarshal([]byte(c.must(0, "", "snapshot", "create", "mem", "warm", "--memory", "-o", "json")), &sn); err != nil {
		t.Fatal(err)
	}
	if sn.Consistency != api.ConsistencyMemory || !sn.Memory || sn.SizeGB != 1 {
		t.Fatalf("memory snapshot: %+v", sn)
	}
	kb = v.keyboard(t, vm)
	kb.typeLine("touch /root/after; echo mark$((2*3)) >/dev/ttyS0")
	v.waitSerial(t, vm, "mark6", 30*time.Second)
	kb.close()

	c.must(0, "", "snapshot", "restore", "mem", "warm")
	if got := getVM(t, c, "mem"); got.State != api.StateRunning {
		t.Fatalf("after a live memory restore: %s", got.State)
	}
	kb = v.keyboard(t, vm)
	defer kb.close()
	kb.press(keyUp)
	kb.press(keyReturn)
	v.waitSerialCount(t, vm, "hist42", hist+1, 30*time.Second)
	kb.typeLine("test -e /root/before && echo before-$((1+1)) >/dev/ttyS0; test -e /root/after || echo after-$((2+2)) >/dev/ttyS0")
	v.waitSerial(t, vm, "after-4", 30*time.Second)
	v.waitSerial(t, vm, "before-2", 30*time.Second)
	if n := v.serialCount(vm, "mark6"); n != 1 {
		t.Fatalf("the command typed after the snapshot ran %d times", n)
	}
	if n := v.serialCount(vm, "vmd-tiny: boot 2"); n != 0 {
		t.Fatal("the guest rebooted instead of resuming")
	}

	// A stopped VM restored to a memory snapshot starts where it was taken.
	c.must(0, "", "stop", "mem", "--force")
	c.must(0, "", "wait", "mem", "--for", "state=stopped", "--timeout", "60s")
	c.must(0, "", "snapshot", "restore", "mem", "warm")
	c.must(0, "", "wait", "mem", "--for", "state=running", "--timeout", "60s")
	kb2 := v.keyboard(t, vm)
	defer kb2.close()
	kb2.typeLine("test -e /root/before && echo again-$((3+3)) >/dev/ttyS0")
	v.waitSerial(t, vm, "again-6", 30*time.Second)
	if n := v.serialCount(vm, "vmd-tiny: boot 2"); n != 0 {
		t.Fatal("the stopped guest booted instead of resuming at the snapshot")
	}
}

// TestSnapshotSurvivesVMDKill kills vmd with SIGKILL while a memory
// snapshot is being taken (its record written pending, QEMU saving): the
// next vmd lists only what the qcow2 file holds, never the half-made
// snapshot, counts only that against the quota, and the VM still boots.
// Then again while a stopped VM is being started at a memory snapshot:
// the VM ends up running, its snapshots as they were.
func TestSnapshotSurvivesVMDKill(t *testing.T) {
	parallel(t, 1)
	v := startVMD(t, storetest.Backends()[1])
	st, err := store.Open(context.Background(), v.DBURL, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := loggedIn(t, v, "ada@example.com")
	c.must(0, "", "create", "web", "--template", "tiny", "--memory", "512", "--wait", "--timeout", "2m")
	vm := getVM(t, c, "web")
	v.waitSerial(t, vm, "vmd-tiny: booted", 90*time.Second)

	cmd := exec.Command(filepath.Join(binDir, "vmctl"), "snapshot", "create", "web", "cut", "--memory")
	cmd.Env = c.env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pending := false
	for deadline := time.Now().Add(60 * time.Second); !pending && time.Now().Before(deadline); {
		sns, err := st.ListSnapshots(context.Background(), vm.ID)
		if err != nil {
			t.Fatal(err)
		}
		pending = len(sns) == 1 && sns[0].Pending
	}
	if !pending {
		t.Fatal("no pending snapshot record seen")
	}
	v.kill()
	_ = cmd.Wait() // its request died with vmd

	v.start()
	// The first pass after the start reconciles the records with the disk.
	var listed, disk []string
	testutil.WaitFor(60*time.Second, func() bool {
		sns, err := st.ListSnapshots(context.Background(), vm.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sns {
			if s.Pending {
				return false // the cheap check first: qemu-img runs only once no record is pending
			}
		}
		listed, disk = snapshotNames(listSnapshots(t, c, "web")), v.diskSnapshots(t, vm)
		return strings.Join(listed, ",") == strings.Join(disk, ",")
	})
	if strings.Join(listed, ",") != strings.Join(disk, ",") {
		t.Fatalf("after the restart vmd lists %v, the qcow2 file holds %v", listed, disk)
	}
	if !strings.Contains(v.log.String(), "removing a snapshot an earlier vmd did not finish") {
		t.Fatal("the next vmd did not remove the pending snapshot")
	}
	t.Logf("after the restart: listed %v, qcow2 %v", listed, disk)
	sizes := 0
	for _, s := range listSnapshots(t, c, "web") {
		sizes += s.SizeGB
	}
	if got := me(t, c).Usage.DiskGB; got != 1+sizes {
		t.Fatalf("disk usage %d, want the VM's 1 GB and its snapshots' %d", got, sizes)
	}
	// A snapshot of the same name can be taken now, and the VM boots.
	c.must(0, "", "wait", "web", "--for", "state=running", "--timeout", "60s")
	if len(listed) == 0 {
		c.must(0, "", "snapshot", "create", "web", "cut")
	}
	c.must(0, "", "stop", "web", "--force")
	c.must(0, "", "wait", "web", "--for", "state=stopped", "--timeout", "60s")
	c.must(0, "", "start", "web")
	v.waitSerial(t, vm, "vmd-tiny: boot 2", 90*time.Second)
	if d, l := v.diskSnapshots(t, vm), snapshotNames(listSnapshots(t, c, "web")); strings.Join(d, ",") != "cut" || strings.Join(l, ",") != "cut" {
		t.Fatalf("qcow2 snapshots %v, listed %v", d, l)
	}

	// Killed in a restore: a stopped VM being started at a memory snapshot.
	c.must(0, "", "wait", "web", "--for", "state=running", "--timeout", "60s")
	c.must(0, "", "snapshot", "create", "web", "warm", "--memory")
	c.must(0, "", "stop", "web", "--force")
	c.must(0, "", "wait", "web", "--for", "state=stopped", "--timeout", "60s")
	cmd = exec.Command(filepath.Join(binDir, "vmctl"), "snapshot", "restore", "web", "warm")
	cmd.Env = c.env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	restoring := false
	for deadline := time.Now().Add(60 * time.Second); !restoring && time.Now().Before(deadline); {
		rec, err := st.GetVM(context.Background(), vm.ID)
		if err != nil {
			t.Fatal(err)
		}
		restoring = rec.Message == "restoring snapshot warm"
	}
	if !restoring {
		t.Fatal("the restore was never seen under way")
	}
	v.kill()
	_ = cmd.Wait()
	v.start()
	c.must(0, "", "wait", "web", "--for", "state=running", "--timeout", "90s")
	if d, l := v.diskSnapshots(t, vm), snapshotNames(listSnapshots(t, c, "web")); strings.Join(d, ",") != "cut,warm" || strings.Join(l, ",") != "cut,warm" {
		t.Fatalf("after a restore cut short: qcow2 snapshots %v, listed %v", d, l)
	}
}
