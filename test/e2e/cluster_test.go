package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
	"github.com/vmdhq/vmd/pkg/mail/mailtest"
	"github.com/vmdhq/vmd/pkg/redisx/redistest"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// clusterStartNode starts one vmd node on ip, sharing the database dbURL,
// with data and run directories of its own and the tiny template imported.
func clusterStartNode(t *testing.T, dbURL, redisURL, name, ip, secret string) *vmd {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "data")
	testutil.OpenParents(t, dataDir)
	runDir, err := os.MkdirTemp("/tmp", "vmdrun-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(runDir) })
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listen on %s (the loopback range): %v", ip, err)
	}
	addr := ln.Addr().String()
	ln.Close()
	v := &vmd{t: t, URL: "http://" + addr, DataDir: dataDir, RunDir: runDir, DBURL: dbURL, SMTP: mailtest.Start(t), log: &testutil.SyncBuffer{}}
	v.args = []string{"serve", "--listen", addr, "--data-dir", dataDir, "--run-dir", runDir, "--database-url", dbURL,
		"--smtp-url", v.SMTP.URL(), "--accel", "tcg", "--log-format", "text", "--stop-timeout", "3s",
		"--node-name", name, "--session-secret", secret, "--redis-url", redisURL}
	if out, code := v.admin(t, "", "image", "import", "tiny", tinyImage(t)); code != 0 {
		t.Fatalf("vmd image import on %s: %d %s", name, code, out)
	}
	t.Cleanup(func() { killGuests(t, dataDir) })
	v.start()
	t.Cleanup(v.stop)
	return v
}

// clusterWait polls a VM through c until ok says yes.
func clusterWait(ctx context.Context, t *testing.T, c *client.Client, id string, timeout time.Duration, what string, ok func(api.VM) bool) api.VM {
	t.Helper()
	var last api.VM
	var err error
	if !testutil.WaitFor(timeout, func() bool {
		var vm *api.VM
		if vm, err = c.GetVM(ctx, id); err == nil {
			last = *vm
		}
		return err == nil && ok(last)
	}) {
		t.Fatalf("vm %s through %s: not %s within %s: %+v (err %v)", id, c.Server(), what, timeout, last, err)
	}
	return last
}

// TestCluster runs three vmd nodes on one PostgreSQL database: VMs spread
// over them, every console is reachable through every node, a killed node's
// VMs read unknown while the others carry on, and the restarted node
// re-adopts its guests.
func TestCluster(t *testing.T) {
	parallel(t, 2)
	dbURL, _ := storetest.Backends()[1].New(t)
	secret := strings.Repeat("cluster-secret-", 3)
	// One Redis shared by the nodes (work queue, console tokens, login limits), under a key prefix of this test's own.
	rdb, prefix := redistest.Client(t)
	_ = rdb
	redisURL := redistest.URL() + "?prefix=" + prefix
	names := []string{"node1", "node2", "node3"}
	nodes := map[string]*vmd{}
	for i, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		nodes[names[i]] = clusterStartNode(t, dbURL, redisURL, names[i], ip, secret)
	}
	n1 := nodes["node1"]
	const email, pw = "ada@example.com", "correct horse battery"
	if out, code := n1.admin(t, pw+"\n", "user", "add", email, "--password-stdin"); code != 0 {
		t.Fatalf("vmd user add: %d %s", code, out)
	}
	if out, code := n1.admin(t, "", "user", "set-quota", email, "--vms", "20", "--cpus", "20"); code != 0 {
		t.Fatalf("vmd user set-quota: %d %s", code, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	lr, err := client.New(n1.URL, "").Login(ctx, email, pw)
	if err != nil {
		t.Fatal(err)
	}
	// One login works on every node: sessions live in the shared database.
	clients := map[string]*client.Client{}
	for _, n := range names {
		clients[n] = client.New(nodes[n].URL, lr.Token)
	}

	// Six VMs, each created through the next node in turn.
	began := time.Now()
	var vms []api.VM
	owners := map[string]bool{}
	for i := range 6 {
		entry := names[i%3]
		vm, err := clients[entry].CreateVM(ctx, api.CreateVMRequest{Name: fmt.Sprintf("c%d", i), Template: "tiny", MemoryMB: 128})
		if err != nil {
			t.Fatalf("create c%d through %s: %v", i, entry, err)
		}
		if nodes[vm.Node] == nil {
			t.Fatalf("c%d placed on %q, not a node", i, vm.Node)
		}
		vms = append(vms, *vm)
		owners[vm.Node] = true
	}
	if len(owners) < 2 {
		t.Fatalf("six VMs landed on %v only", owners)
	}
	for _, vm := range vms {
		clusterWait(ctx, t, clients["node1"], vm.ID, 5*time.Minute, "running", func(v api.VM) bool { return v.State == api.StateRunning })
		nodes[vm.Node].waitSerial(t, vm, "vmd-tiny: booted", 5*time.Minute)
	}
	t.Logf("six VMs on %d nodes booted in %s", len(owners), time.Since(began).Round(time.Second))

	began = time.Now()
	for _, vm := range vms {
		for _, n := range names {
			conn, err := clients[n].DialConsole(ctx, vm.ID)
			if err != nil {
				t.Fatalf("console of %s (on %s) through %s: %v", vm.Name, vm.Node, n, err)
			}
			screen(ctx, t, conn)
		}
	}
	t.Logf("18 consoles (6 VMs × 3 entry nodes) showed a screen in %s", time.Since(began).Round(time.Second))

	cli := newCLI(t, nodes["node2"].URL)
	cli.must(0, pw+"\n", "login", "--server", nodes["node2"].URL, "--email", email, "--password-stdin")
	wide := cli.must(0, "", "list", "-o", "wide")
	for owner := range owners {
		if !strings.Contains(wide, owner) {
			t.Errorf("vmctl list -o wide lacks node %s:\n%s", owner, wide)
		}
	}
	if out, code := n1.admin(t, "", "node", "list"); code != 0 || strings.Count(out, "ready") != 3 {
		t.Fatalf("vmd node list: %d\n%s", code, out)
	}

	// Kill the owner of c0 as a crash would.
	victimName := vms[0].Node
	victim := nodes[victimName]
	var survivors []string
	for _, n := range names {
		if n != victimName {
			survivors = append(survivors, n)
		}
	}
	pids := map[string]int{}
	for _, vm := range vms {
		if vm.Node == victimName {
			pids[vm.ID] = victim.pid(t, vm)
		}
	}
	victim.kill()
	killed := time.Now()
	for _, vm := range vms {
		c := clients[survivors[0]]
		if vm.Node == victimName {
			got := clusterWait(ctx, t, c, vm.ID, 20*time.Second, "unknown", func(v api.VM) bool { return v.State == api.StateUnknown })
			if !strings.Contains(got.Message, "not heartbeating") {
				t.Errorf("unknown vm %s: message %q", vm.Name, got.Message)
			}
		}
	}
	t.Logf("killed %s's %d VMs read unknown after %s", victimName, len(pids), time.Since(killed).Round(100*time.Millisecond))
	for _, vm := range vms {
		for _, n := range survivors {
			got, err := clients[n].GetVM(ctx, vm.ID)
			if err != nil {
				t.Fatal(err)
			}
			if vm.Node != victimName && got.State != api.StateRunning {
				t.Errorf("vm %s on %s through %s: %s, want running", vm.Name, vm.Node, n, got.State)
			}
			if vm.Node == victimName && got.State != api.StateUnknown {
				t.Errorf("vm %s on dead %s through %s: %s, want unknown", vm.Name, vm.Node, n, got.State)
			}
		}
	}
	for id, pid := range pids {
		if !alive(pid) {
			t.Fatalf("guest %s (pid %d) died with its node", id, pid)
		}
	}
	for _, vm := range vms {
		if vm.Node == victimName {
			if _, err := clients[survivors[0]].DialConsole(ctx, vm.ID); err == nil {
				t.Errorf("console of %s on the dead node opened", vm.Name)
			}
			continue
		}
		conn, err := clients[survivors[1]].DialConsole(ctx, vm.ID)
		if err != nil {
			t.Fatalf("console of %s through %s with %s down: %v", vm.Name, survivors[1], victimName, err)
		}
		screen(ctx, t, conn)
	}

	// A drained node gets no new VM; the dead one neither.
	drained := survivors[0]
	if out, code := n1.admin(t, "", "node", "drain", drained); code != 0 {
		t.Fatalf("vmd node drain: %d %s", code, out)
	}
	extra, err := clients[drained].CreateVM(ctx, api.CreateVMRequest{Name: "extra", Template: "tiny", MemoryMB: 128})
	if err != nil {
		t.Fatal(err)
	}
	if extra.Node != survivors[1] {
		t.Errorf("with %s draining and %s down, extra went to %s", drained, victimName, extra.Node)
	}
	if _, err := clients[drained].DeleteVM(ctx, extra.ID); err != nil {
		t.Fatal(err)
	}
	if out, code := n1.admin(t, "", "node", "undrain", drained); code != 0 {
		t.Fatalf("vmd node undrain: %d %s", code, out)
	}

	// The restarted node re-adopts its guests: same processes, running again.
	victim.start()
	began = time.Now()
	for _, vm := range vms {
		if vm.Node != victimName {
			continue
		}
		clusterWait(ctx, t, clients[survivors[1]], vm.ID, time.Minute, "running", func(v api.VM) bool { return v.State == api.StateRunning })
		if p := victim.pid(t, vm); p != pids[vm.ID] || !alive(p) {
			t.Fatalf("after restart %s: pid %d, was %d", vm.Name, p, pids[vm.ID])
		}
		conn, err := clients[survivors[0]].DialConsole(ctx, vm.ID)
		if err != nil {
			t.Fatalf("console of re-adopted %s: %v", vm.Name, err)
		}
		screen(ctx, t, conn)
	}
	t.Logf("%s re-adopted its guests %s after restart", victimName, time.Since(began).Round(100*time.Millisecond))

	// Stop and delete through a node that does not own the VM: the owner acts on the stored desired state.
	target := vms[1]
	other := names[0]
	if other == target.Node {
		other = names[1]
	}
	began = time.Now()
	if _, err := clients[other].StopVM(ctx, target.ID, false); err != nil {
		t.Fatal(err)
	}
	clusterWait(ctx, t, clients[other], target.ID, time.Minute, "stopped", func(v api.VM) bool { return v.State == api.StateStopped })
	if _, err := clients[other].DeleteVM(ctx, target.ID); err != nil {
		t.Fatal(err)
	}
	if !testutil.WaitFor(time.Minute, func() bool { _, err := clients[other].GetVM(ctx, target.ID); return client.IsNotFound(err) }) {
		t.Fatalf("vm %s on %s not deleted through %s", target.Name, target.Node, other)
	}
	t.Logf("stop and delete of %s on %s through %s took %s", target.Name, target.Node, other, time.Since(began).Round(100*time.Millisecond))
}
