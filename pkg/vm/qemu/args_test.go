package qemu

import (
	"slices"
	"strings"
	"testing"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/guestnet"
	"github.com/vmdhq/vmd/pkg/vm"
)

func TestArgs(t *testing.T) {
	base := Invocation{Spec: Spec{ID: "vm_1", CPU: 2, MemoryMB: 256}, Accel: "tcg", Disk: "/d/disk.qcow2",
		Serial: "/d/serial.log", PIDFile: "/d/qemu.pid", QMP: "/r/qmp.sock", VNC: "/r/vnc.sock",
		SerialSock: "/r/serial.sock"}
	withSeed := base
	withSeed.Seed = "/d/seed.iso"
	commas := base
	commas.Disk = "/d,x/disk.qcow2"
	kvm := base
	kvm.Accel = "kvm"
	agent := base
	agent.QGA = "/r/qga.sock"
	loadvm := base
	loadvm.LoadVM = "warm"
	nat := base
	nat.Network, nat.Net = api.NetworkNAT, "/r/net.sock"
	none := base
	none.Network, none.Net = api.NetworkNone, "/r/net.sock"
	tests := []struct {
		name    string
		spec    Invocation
		want    [][]string // consecutive argument pairs that must appear
		without []string   // arguments that must not appear
	}{
		{"basics", base, [][]string{
			{"-nodefaults", "-no-user-config"}, {"-machine", "q35"}, {"-accel", "tcg"},
			{"-smp", "2"}, {"-m", "256"},
			{"-drive", "if=none,id=disk0,file=/d/disk.qcow2,format=qcow2"},
			{"-device", "virtio-blk-pci,drive=disk0,bootindex=0"},
			{"-vga", "std"}, {"-display", "none"},
			{"-vnc", "unix:/r/vnc.sock"},
			{"-qmp", "unix:/r/qmp.sock,server=on,wait=off"},
			{"-chardev", "socket,id=ser0,path=/r/serial.sock,server=on,wait=off,logfile=/d/serial.log,logappend=on"},
			{"-serial", "chardev:ser0"},
			{"-pidfile", "/d/qemu.pid"},
			{"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"},
			// The console's absolute pointer.
			{"-device", "qemu-xhci,id=usb0"}, {"-device", "usb-tablet,bus=usb0.0"},
		}, []string{"-daemonize", "-runas", "virtio-blk-pci,drive=seed0", "-S",
			// No qemu-vdagent: QEMU 7.2 cannot migrate it, which memory snapshots need.
			"qemu-vdagent,id=vdagent0,name=vdagent,clipboard=on", "virtio-serial-pci,id=vserial0",
			// A guest's reboot resets in place; its poweroff ends the process.
			"-no-reboot", "-no-shutdown"}},
		{"seed", withSeed, [][]string{
			{"-drive", "if=none,id=seed0,file=/d/seed.iso,format=raw,readonly=on"},
			{"-device", "virtio-blk-pci,drive=seed0"},
		}, nil},
		{"comma in path", commas, [][]string{{"-drive", "if=none,id=disk0,file=/d,,x/disk.qcow2,format=qcow2"}}, nil},
		{"kvm", kvm, [][]string{{"-accel", "kvm"}}, nil},
		{"guest agent", agent, [][]string{
			{"-chardev", "socket,id=qga0,path=/r/qga.sock,server=on,wait=off"},
			{"-device", "virtio-serial-pci,id=vserial0"},
			{"-device", "virtserialport,bus=vserial0.0,nr=1,chardev=qga0,name=org.qemu.guest_agent.0"},
		}, nil},
		// A memory snapshot's restore starts the guest at it; a plain launch boots.
		{"loadvm", loadvm, [][]string{{"-loadvm", "warm"}}, nil},
		{"boots", base, nil, []string{"-loadvm"}},
		{"nat", nat, [][]string{
			{"-netdev", "stream,id=n0,server=on,addr.type=unix,addr.path=/r/net.sock"},
			{"-device", "virtio-net-pci,netdev=n0,mac=" + guestnet.GuestMAC("vm_1").String() + ",host_mtu=65520"},
		}, []string{"user", "-nic"}},
		{"none", none, nil, []string{"-netdev", "-nic", "virtio-net-pci"}},
		{"unset is none", base, nil, []string{"-netdev", "-nic"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.spec.validate(); err != nil {
				t.Fatal(err)
			}
			a := Args(tc.spec)
			// At most one virtio-serial controller, whatever channels share it.
			if n := slices.Index(a, "virtio-serial-pci,id=vserial0"); n >= 0 && slices.Index(a[n+1:], "virtio-serial-pci,id=vserial0") >= 0 {
				t.Fatalf("want one virtio-serial controller: %q", a)
			}
			for _, w := range tc.want {
				i := slices.Index(a, w[0])
				for i >= 0 && i+1 < len(a) && a[i+1] != w[1] {
					j := slices.Index(a[i+1:], w[0])
					if j < 0 {
						i = -1
						break
					}
					i += 1 + j
				}
				if i < 0 || i+1 >= len(a) {
					t.Errorf("missing %q in %s", w, strings.Join(a, " "))
				}
			}
			for _, w := range tc.without {
				if slices.Contains(a, w) {
					t.Errorf("unexpected %q in %s", w, strings.Join(a, " "))
				}
			}
			for _, x := range a {
				if strings.Contains(x, "tcp:") || strings.HasPrefix(x, ":") {
					t.Errorf("network listener %q", x)
				}
			}
		})
	}
}

func TestSpecValidate(t *testing.T) {
	ok := Invocation{Spec: Spec{ID: "vm_1", CPU: 1, MemoryMB: 64}, Accel: "tcg", Disk: "d", Serial: "s", PIDFile: "p", QMP: "q", VNC: "v", SerialSock: "t"}
	bad := map[string]func(*Invocation){
		"accel":          func(s *Invocation) { s.Accel = "xen" },
		"cpu":            func(s *Invocation) { s.CPU = 0 },
		"no disk":        func(s *Invocation) { s.Disk = "" },
		"comma sock":     func(s *Invocation) { s.QMP = "a,b" },
		"no serial sock": func(s *Invocation) { s.SerialSock = "" },
		"comma serial":   func(s *Invocation) { s.SerialSock = "a,b" },
		"nat no sock":    func(s *Invocation) { s.Network = api.NetworkNAT },
		"bad network":    func(s *Invocation) { s.Network, s.Net = "bridge", "n" },
	}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	for name, f := range bad {
		s := ok
		f(&s)
		if s.validate() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestBootSector(t *testing.T) {
	b := bootSector("hi")
	if len(b) != 512 || b[510] != 0x55 || b[511] != 0xaa {
		t.Fatalf("bad boot sector signature")
	}
	if !strings.Contains(string(b), "hi\n\x00") {
		t.Fatal("message missing")
	}
}

// TestPoweredOff: only a shutdown the guest asked for is a wish to be off.
func TestPoweredOff(t *testing.T) {
	tests := []struct {
		e    vm.GuestEvent
		want bool
	}{
		{vm.GuestEvent{Kind: "SHUTDOWN", Guest: true, Message: "guest-shutdown"}, true},
		{vm.GuestEvent{Kind: "SHUTDOWN", Guest: true, Message: "guest-panic"}, false},
		{vm.GuestEvent{Kind: "SHUTDOWN", Guest: true, Message: "guest-reset"}, false},
		{vm.GuestEvent{Kind: "SHUTDOWN", Guest: false, Message: "host-qmp-quit"}, false},
		{vm.GuestEvent{Kind: "SHUTDOWN", Guest: false, Message: "host-signal"}, false},
		{vm.GuestEvent{Kind: "RESET", Guest: true, Message: "guest-reset"}, false},
	}
	for _, tc := range tests {
		if got := poweredOff(tc.e); got != tc.want {
			t.Errorf("poweredOff(%+v) = %v, want %v", tc.e, got, tc.want)
		}
	}
}
