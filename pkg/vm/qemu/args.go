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
	Net     string // unix socket of the NIC's stream netdev, used when Network is nat
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
			"-device", "virtio-net-pci,netdev=n0,mac="+guestnet.GuestMAC(s.ID).String())
	}
	a = append(a,
		"-vga", "std",
		"-display", "none",
		// A unix socket only: the console is reached through vmd's authenticated proxy, never TCP.
		"-vnc", "unix:"+s.VNC,
		"-qmp", "unix:"+s.QMP+",server=on,wait=off",
		// append=on keeps earlier boots' output, so a restart does not erase what led to it.
		"-chardev", "file,id=serial0,path="+escape(s.Serial)+",append=on",
		"-serial", "chardev:serial0",
		"-pidfile", s.PIDFile,
		"-sandbox", sandbox,
	)
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
	case s.Disk == "" || s.Serial == "" || s.PIDFile == "" || s.QMP == "" || s.VNC == "":
		return fmt.Errorf("disk, serial, pid file and sockets are required")
	case strings.Contains(s.VNC, ",") || strings.Contains(s.QMP, ","):
		return fmt.Errorf("socket paths must not contain commas")
	case s.Network == api.NetworkNAT && s.Net == "":
		return fmt.Errorf("network %s needs its socket path", s.Network)
	case s.Network != "" && s.Network != api.NetworkNAT && s.Network != api.NetworkNone:
		return fmt.Errorf("network %q: want %s or %s", s.Network, api.NetworkNAT, api.NetworkNone)
	}
	return nil
}
