package vm

import (
	"fmt"
	"os"
	"path/filepath"
)

// Names of the files a VM has on disk, kept in one place so the driver, the
// console proxy and the tests agree (lima keeps its own in pkg/limatype/filenames).
const (
	VMsDir     = "vms"        // under the data dir: vms/<owner-id>/<vm-id>/
	DiskFile   = "disk.qcow2" // the guest's overlay on its template
	SeedFile   = "seed.iso"   // cloud-init NoCloud seed, only with user-data
	SerialFile = "serial.log" // the guest's serial port
	PIDFile    = "qemu.pid"   // written by QEMU's -pidfile
	QEMULog    = "qemu.log"   // QEMU's own stdout and stderr
	QMPSocket  = "qmp.sock"   // in the runtime dir
	VNCSocket  = "vnc.sock"   // in the runtime dir
	QGASocket  = "qga.sock"   // in the runtime dir: the guest agent's virtio-serial port
	// SerialSocket is the serial port's chardev socket, in the runtime dir;
	// QEMU takes one client at a time, so vmd holds it (pkg/console).
	SerialSocket = "serial.sock"
	NetSocket    = "net.sock" // in the runtime dir: QEMU's -netdev stream, vmd's guestnet dials it
)

// maxSocketPath is sun_path's size less its terminating NUL.
const maxSocketPath = 107

// Layout says where a VM's files and sockets live.
type Layout struct {
	// DataDir holds vms/<owner-id>/<vm-id>/ with the disk, seed, log and pid file.
	DataDir string
	// RunDir holds <vm-id>/ with the unix sockets; short, since socket paths are limited.
	RunDir string
}

// DefaultRunDir is /run/vmd as root, else $XDG_RUNTIME_DIR/vmd, else a per-user dir in /tmp.
func DefaultRunDir() string {
	if os.Geteuid() == 0 {
		return "/run/vmd"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "vmd")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("vmd-%d", os.Geteuid()))
}

// VMDir is the directory of one VM's files.
func (l Layout) VMDir(ownerID, id string) string {
	return filepath.Join(l.DataDir, VMsDir, ownerID, id)
}

// VMFile is the path of one of a VM's files (DiskFile, SerialFile, …).
func (l Layout) VMFile(ownerID, id, name string) string {
	return filepath.Join(l.VMDir(ownerID, id), name)
}

// RuntimeDir is the directory of one VM's sockets.
func (l Layout) RuntimeDir(id string) string { return filepath.Join(l.RunDir, id) }

// Socket is the path of one of a VM's sockets (QMPSocket, VNCSocket, QGASocket).
func (l Layout) Socket(id, name string) string { return filepath.Join(l.RuntimeDir(id), name) }

// Check reports a layout whose socket paths would be too long for a VM id of idLen bytes.
func (l Layout) Check(idLen int) error {
	if l.DataDir == "" || l.RunDir == "" {
		return fmt.Errorf("layout: data dir and run dir are required")
	}
	if n := len(filepath.Join(l.RunDir, fmt.Sprintf("%0*d", idLen, 0), QMPSocket)); n > maxSocketPath {
		return fmt.Errorf("layout: run dir %s gives %d-byte socket paths, more than %d", l.RunDir, n, maxSocketPath)
	}
	return nil
}
