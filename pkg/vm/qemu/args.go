// Package qemu is vmd's QEMU driver: it makes a VM's overlay and seed,
// launches one QEMU per VM (unprivileged, sandboxed, outliving vmd), talks
// QMP to it, stops it and removes what it left. The reconciler in pkg/vm
// decides when; this package only knows how.
package qemu

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/guestnet"
	"github.com/vmdhq/vmd/pkg/vm"
)

// Spec is what the driver is told of a guest (vm.GuestSpec, built by the
// reconciler from the VM's record). New guest features (network, guest
// agent, serial socket) are fields there, read by Args here.
type Spec = vm.GuestSpec

// Invocation is what one QEMU invocation needs: the guest's Spec and where
// its files are, as plain data so the arguments are table-tested without
// starting QEMU.
type Invocation struct {
	Spec
	Accel   string // "kvm" or "tcg"
	Disk    string // qcow2 overlay
	Seed    string // cloud-init ISO; "" for none
	Serial  string // file the serial port is appended to
	PIDFile string
	QMP     string // unix socket
	VNC     string // unix socket
	QGA     string // unix socket of the guest agent's port; "" for none
	LoadVM  string // a memory snapshot to start at (-loadvm); "" boots
	// SerialSock is the serial port's unix socket (vmd holds its one client
	// connection and fans it out); the port's output is also appended to Serial.
	SerialSock string
	Net        string // unix socket of the NIC's stream netdev, used when Network is nat
}

// sandbox denies what a guest's QEMU never needs. It must not be combined
// with -daemonize or -runas (both die with SIGSYS on QEMU 7.2).
const sandbox = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

// Args returns QEMU's command line (without the binary) for s.
func Args(s Invocation) []string {
	a := []string{
		"-name", s.ID,
		"-nodefaults", "-no-user-config",
		"-machine", "q35",
		"-accel", s.Accel,
		"-smp", strconv.Itoa(s.CPU),
		"-m", strconv.Itoa(s.MemoryMB),
		"-drive", "if=none,id=disk0,file=" + escape(s.Disk) + ",format=qcow2",
		"-device", "virtio-blk-pci,drive=disk0,bootindex=0",
	}
	if s.Seed != "" {
		// A read-only virtio disk rather than a CD: q35's CD drive sits on AHCI,
		// which small guests lack; cloud-init finds the seed by its label either way.
		a = append(a,
			"-drive", "if=none,id=seed0,file="+escape(s.Seed)+",format=raw,readonly=on",
			"-device", "virtio-blk-pci,drive=seed0")
	}
	if s.Network == api.NetworkNAT {
		// QEMU listens and vmd's guestnet connects (docs/ARCHITECTURE.md "Guest network"): no
		// host TCP port, and QEMU listens again when vmd goes, so a restarted vmd reattaches.
		a = append(a,
			"-netdev", "stream,id=n0,server=on,addr.type=unix,addr.path="+escape(s.Net),
			"-device", "virtio-net-pci,netdev=n0,mac="+guestnet.GuestMAC(s.ID).String()+",host_mtu="+strconv.Itoa(guestMTU))
	}
	a = append(a,
		"-vga", "std",
		"-display", "none",
		// A unix socket only: the console is reached through vmd's authenticated proxy, never TCP.
		"-vnc", "unix:"+s.VNC,
		"-qmp", "unix:"+s.QMP+",server=on,wait=off",
		// A socket for the interactive console, with the log kept beside it:
		// logappend=on keeps earlier boots' output, so a restart does not erase what led to it.
		"-chardev", "socket,id=ser0,path="+s.SerialSock+",server=on,wait=off,logfile="+escape(s.Serial)+",logappend=on",
		"-serial", "chardev:ser0",
		"-pidfile", s.PIDFile,
		"-sandbox", sandbox,
	)
	if s.QGA != "" {
		a = append(a, "-chardev", "socket,id=qga0,path="+escape(s.QGA)+",server=on,wait=off")
	}
	if s.LoadVM != "" {
		a = append(a, "-loadvm", s.LoadVM)
	}
	a = append(a, consoleDevices()...)
	a = append(a, virtioSerial(serialPorts(s))...)
	return a
}

// consoleDevices make the console feel local: a USB tablet reports
// absolute positions, so the guest's pointer follows the browser's (a
// relative mouse drifts). QEMU's qemu-vdagent chardev would carry VNC's
// clipboard to a spice-vdagent in the guest, but QEMU 7.2 refuses to
// migrate it, so with it no memory snapshot (snapshot-save) can be taken:
// snapshots win, and the console's "Type it" is the clipboard.
func consoleDevices() []string {
	return []string{
		"-device", "qemu-xhci,id=usb0",
		"-device", "usb-tablet,bus=usb0.0",
	}
}

// serialPort is one port of the guest's virtio-serial bus: a chardev and
// the name the guest sees it by.
type serialPort struct{ chardev, name string }

// serialPorts are the guest's virtio-serial ports. Every guest channel (the
// clipboard agent's, the guest agent's) is added here, so all share one
// controller.
func serialPorts(s Invocation) []serialPort {
	var ports []serialPort
	if s.QGA != "" {
		// qemu-ga finds its port by this name; QEMU listens on qga0's socket
		// and vmd connects (one client at a time).
		ports = append(ports, serialPort{chardev: "qga0", name: "org.qemu.guest_agent.0"})
	}
	return ports
}

// virtioSerial puts ports on one virtio-serial controller.
func virtioSerial(ports []serialPort) []string {
	if len(ports) == 0 {
		return nil
	}
	a := []string{"-device", "virtio-serial-pci,id=vserial0"}
	for i, p := range ports {
		a = append(a, "-device", fmt.Sprintf("virtserialport,bus=vserial0.0,nr=%d,chardev=%s,name=%s", i+1, p.chardev, p.name))
	}
	return a
}

// escape doubles commas, QEMU's way of quoting them inside an option value.
func escape(p string) string { return strings.ReplaceAll(p, ",", ",,") }

// validate rejects an Invocation QEMU would misread or we would regret.
func (s Invocation) validate() error {
	switch {
	case s.Accel != "kvm" && s.Accel != "tcg":
		return fmt.Errorf("accel %q: want kvm or tcg", s.Accel)
	case s.CPU < 1 || s.MemoryMB < 1:
		return fmt.Errorf("cpu %d, memory %d MB: must be positive", s.CPU, s.MemoryMB)
	case s.Disk == "" || s.Serial == "" || s.PIDFile == "" || s.QMP == "" || s.VNC == "" || s.SerialSock == "":
		return fmt.Errorf("disk, serial, pid file and sockets are required")
	case strings.Contains(s.VNC, ",") || strings.Contains(s.QMP, ",") || strings.Contains(s.QGA, ",") || strings.Contains(s.SerialSock, ","):
		return fmt.Errorf("socket paths must not contain commas")
	case s.Network == api.NetworkNAT && s.Net == "":
		return fmt.Errorf("network %s needs its socket path", s.Network)
	case s.Network != "" && s.Network != api.NetworkNAT && s.Network != api.NetworkNone:
		return fmt.Errorf("network %q: want %s or %s", s.Network, api.NetworkNAT, api.NetworkNone)
	}
	return nil
}
