package qga

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// TestZZProbe (temporary, not committed): exec timing against a real tiny guest.
func TestZZProbe(t *testing.T) {
	img := os.Getenv("PROBE_IMAGE")
	if img == "" {
		t.Skip()
	}
	dir := t.TempDir()
	disk := filepath.Join(dir, "d.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-f", "qcow2", "-F", "qcow2", "-b", img, disk).CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
	sock := filepath.Join(dir, "qga.sock")
	q := exec.Command("qemu-system-x86_64", "-nodefaults", "-no-user-config", "-machine", "q35", "-accel", "tcg", "-m", "256", "-display", "none",
		"-drive", "if=none,id=d0,file="+disk+",format=qcow2", "-device", "virtio-blk-pci,drive=d0",
		"-device", "virtio-serial-pci,id=vs0", "-chardev", "socket,id=qga0,path="+sock+",server=on,wait=off",
		"-device", "virtserialport,bus=vs0.0,nr=1,chardev=qga0,name=org.qemu.guest_agent.0",
		"-serial", "file:"+filepath.Join(dir, "serial.log"))
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = q.Process.Kill(); _ = q.Wait() }()
	c := New(sock, Options{SyncTimeout: 2 * time.Second})
	defer c.Close()
	ctx := context.Background()
	deadline := time.Now().Add(4 * time.Minute)
	for c.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("no agent")
		}
		time.Sleep(time.Second)
	}
	time.Sleep(5 * time.Second) // let boot settle
	p50 := func(ds []time.Duration) time.Duration {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	var pings []time.Duration
	for range 30 {
		s := time.Now()
		_ = c.Ping(ctx)
		pings = append(pings, time.Since(s))
	}
	t.Logf("ping p50 %v", p50(pings))
	// spawn alone, then poll every 1ms and note when exited.
	var spawns, ends, polls []time.Duration
	for range 30 {
		s := time.Now()
		pid, err := c.spawn(ctx, ExecRequest{Path: "true", Capture: true})
		if err != nil {
			t.Fatal(err)
		}
		spawns = append(spawns, time.Since(s))
		n := 0
		for {
			n++
			st, err := c.execStatus(ctx, pid)
			if err != nil {
				t.Fatal(err)
			}
			if st.Exited {
				break
			}
		}
		ends = append(ends, time.Since(s))
		polls = append(polls, time.Duration(n))
	}
	t.Logf("spawn p50 %v; exited seen (busy poll) p50 %v; polls p50 %d", p50(spawns), p50(ends), p50(polls))
	var full []time.Duration
	for range 30 {
		s := time.Now()
		if _, err := c.Exec(ctx, ExecRequest{Path: "true", Capture: true}); err != nil {
			t.Fatal(err)
		}
		full = append(full, time.Since(s))
	}
	t.Logf("Exec (current backoff) p50 %v", p50(full))
	full = nil
	for range 30 {
		s := time.Now()
		if _, err := c.Exec(ctx, ExecRequest{Path: "true"}); err != nil {
			t.Fatal(err)
		}
		full = append(full, time.Since(s))
	}
	t.Logf("Exec without capture p50 %v", p50(full))
}
