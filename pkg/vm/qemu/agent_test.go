package qemu

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/qga"
	"github.com/vmdhq/vmd/pkg/vm/vmtest"
)

func TestGuestAddresses(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		name string
		ifs  []qga.Interface
		want []string
	}{
		{"none", nil, []string{}},
		{"loopback left out", []qga.Interface{
			{Name: "lo", Addresses: []netip.Prefix{p("127.0.0.1/8"), p("::1/128")}},
			{Name: "eth0", Addresses: []netip.Prefix{p("10.0.2.15/24"), p("fec0::5054:ff:fe12:3456/64")}},
		}, []string{"10.0.2.15/24", "fec0::5054:ff:fe12:3456/64"}},
		{"link-local left out", []qga.Interface{
			{Name: "eth0", Addresses: []netip.Prefix{p("192.168.127.2/24"), p("fe80::50ad:d3ff:fe55:67b6/64"), p("169.254.3.4/16")}},
		}, []string{"192.168.127.2/24"}},
		{"two nics in order", []qga.Interface{
			{Name: "eth1", Addresses: []netip.Prefix{p("192.0.2.7/28")}},
			{Name: "eth0", Addresses: []netip.Prefix{p("10.0.2.15/24")}},
		}, []string{"192.0.2.7/28", "10.0.2.15/24"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := guestAddresses(tc.ifs); !slices.Equal(got, tc.want) || got == nil {
				t.Fatalf("guestAddresses = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestSerialHas(t *testing.T) {
	p := filepath.Join(t.TempDir(), "serial.log")
	old := "vmd-tiny: boot 1\r\nvmd-tiny: booted\r\n"
	if err := os.WriteFile(p, []byte(old+"vmd-tiny: boot 2\r\nvmd-tiny: booted-not\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	from := int64(len(old))
	if !serialHas(p, 0, "vmd-tiny: booted") {
		t.Fatal("the whole log has the line")
	}
	if serialHas(p, from, "vmd-tiny: booted") {
		t.Fatal("an earlier boot's line, or a longer line, counted for this boot")
	}
	if serialHas(filepath.Join(t.TempDir(), "none"), 0, "x") {
		t.Fatal("a missing log has a line")
	}
}

// TestDriverGuestAgent boots the tiny image: it becomes ready (serial
// line, then the agent), its agent runs a command and reports addresses,
// and a stop ends it through guest-shutdown, not ACPI or a kill.
func TestDriverGuestAgent(t *testing.T) {
	t.Parallel()
	base := tinyImage(t)
	l := vmtest.Layout(t)
	d := newDriver(t, l)
	events := make(chan vm.GuestEvent, 256)
	d.Subscribe(func(e vm.GuestEvent) {
		select {
		case events <- e:
		default:
		}
	})
	ctx := context.Background()
	v := testVM("agent")
	v.MemoryMB = 256
	v.ReadyLine = vm.DefaultReadyLine
	if err := d.Provision(ctx, v, base); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Agent(v.ID); err == nil {
		t.Fatal("an agent for a guest that never ran")
	}
	if err := d.Launch(ctx, v); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.Socket(v.ID, vm.QGASocket)); err != nil {
		t.Fatalf("agent socket: %v", err)
	}
	serial := filepath.Join(l.VMDir(v.OwnerID, v.ID), vm.SerialFile)
	e := nextEvent(t, events, v.ID, vm.EventReady, 120*time.Second)
	if !strings.Contains(e.Message, "serial") && !strings.Contains(e.Message, "agent") {
		t.Fatalf("ready event says %q", e.Message)
	}
	if !serialHas(serial, 0, vm.DefaultReadyLine) {
		t.Fatal("ready before the serial line")
	}
	a, err := d.Agent(v.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The agent starts after the ready line; wait until it answers.
	deadline := time.Now().Add(60 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := a.Ping(pctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent never answered: %v", err)
		}
		select {
		case <-time.After(200 * time.Millisecond): // polling the guest, not synchronising with it
		case <-ctx.Done():
		}
	}
	res, err := a.Exec(ctx, qga.ExecRequest{Path: "/bin/sh", Args: []string{"-c", "echo hi; exit 42"}, Capture: true})
	if err != nil || res.ExitCode != 42 || string(res.Stdout) != "hi\n" {
		t.Fatalf("exec = %+v, %v", res, err)
	}
	// The guest has no NIC here (the network is another part's): the agent
	// reports lo alone, which is left out.
	ifs, err := a.NetworkInterfaces(ctx)
	if err != nil || len(ifs) == 0 {
		t.Fatalf("interfaces = %v, %v", ifs, err)
	}
	if got := guestAddresses(ifs); len(got) != 0 {
		t.Fatalf("addresses of a guest with only lo = %v", got)
	}
	if err := d.Stop(ctx, v.ID, nil); err != nil {
		t.Fatal(err)
	}
	if got := d.StopPath(v.ID); got != "guest agent (guest-shutdown)" {
		t.Fatalf("stop path = %q", got)
	}
	if _, err := d.Agent(v.ID); err == nil {
		t.Fatal("an agent for a stopped guest")
	}
}

func nextEvent(t *testing.T, events <-chan vm.GuestEvent, id, kind string, limit time.Duration) vm.GuestEvent {
	t.Helper()
	timeout := time.After(limit)
	for {
		select {
		case e := <-events:
			if e.ID == id && e.Kind == kind {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event for %s in %v", kind, id, limit)
		}
	}
}

// TestSerialFromKept: the offset of a boot's serial output survives for an
// adopting driver; without one, adoption leaves readiness to the agent.
func TestSerialFromKept(t *testing.T) {
	l := vmtest.Layout(t)
	d := newDriver(t, l)
	if err := os.MkdirAll(l.RuntimeDir("vm_x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if got := d.loadSerialFrom("vm_x"); got != -1 {
		t.Fatalf("offset without a file = %d", got)
	}
	d.saveSerialFrom("vm_x", 12345)
	if got := newDriver(t, l).loadSerialFrom("vm_x"); got != 12345 {
		t.Fatalf("offset = %d, want 12345", got)
	}
}
