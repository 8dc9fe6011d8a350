package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/vmdhq/vmd/pkg/vm"
)

// minFree is the space a new overlay needs at least; an overlay starts
// tiny, but a nearly full disk would fail the guest's first writes.
const minFree = 64 << 20

// ErrNoSpace is returned (wrapped) when the data dir's file system is full.
var ErrNoSpace = vm.ErrNoSpace

// Provision makes the VM's directory, its qcow2 overlay on base (which is
// only ever opened read-only) and, with user-data, its cloud-init seed.
// On failure nothing is left behind.
func (d *Driver) Provision(ctx context.Context, v Spec, base string) error {
	return d.provision(ctx, v, base, func(disk, base string, info imageInfo) error {
		// Never shrink below the base; grow to the asked size in the same step.
		size := max(info.VirtualSize, int64(v.DiskGB)<<30)
		if out, err := exec.CommandContext(ctx, d.cfg.QEMUImg, "create", "-q", "-f", "qcow2",
			"-F", "qcow2", "-b", base, disk, fmt.Sprint(size)).CombinedOutput(); err != nil {
			return fmt.Errorf("create overlay: %w: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	})
}

// provision makes the VM's directory, its disk (through makeDisk, told the
// base's absolute path and info) and its seed, and gives them to the guest's uid.
func (d *Driver) provision(ctx context.Context, v Spec, base string, makeDisk func(disk, base string, info imageInfo) error) (err error) {
	if base == "" {
		return fmt.Errorf("provision %s: no base image", v.ID)
	}
	base, err = filepath.Abs(base)
	if err != nil {
		return fmt.Errorf("provision %s: %w", v.ID, err)
	}
	if _, err := os.Stat(base); err != nil {
		return fmt.Errorf("provision %s: base image: %w", v.ID, err)
	}
	info, err := d.imageInfo(ctx, base)
	if err != nil {
		return fmt.Errorf("provision %s: base image %s: %w", v.ID, base, err)
	}
	ownerDir := filepath.Dir(d.cfg.Layout.VMDir(v.OwnerID, v.ID))
	if err := os.MkdirAll(ownerDir, 0o711); err != nil {
		return fmt.Errorf("provision %s: %w", v.ID, err)
	}
	if err := checkFree(ownerDir, minFree); err != nil {
		return fmt.Errorf("provision %s: %w", v.ID, err)
	}
	dir := d.cfg.Layout.VMDir(v.OwnerID, v.ID)
	// The directory is made first and given to the guest's uid at once:
	// its owner is how a later launch knows which uid the guest runs as.
	if err := d.claim(dir); err != nil {
		return fmt.Errorf("provision %s: %w", v.ID, err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
			_ = os.Remove(ownerDir)
		}
	}()
	if err := makeDisk(filepath.Join(dir, vm.DiskFile), base, info); err != nil {
		return fmt.Errorf("provision %s: %w", v.ID, err)
	}
	if v.UserData != "" || len(v.SSHKeys) > 0 {
		seed := filepath.Join(dir, vm.SeedFile)
		if err := makeSeed(ctx, dir, seed, v); err != nil {
			return fmt.Errorf("provision %s: %w", v.ID, err)
		}
	}
	uid, err := dirOwner(dir)
	if err != nil {
		return fmt.Errorf("provision %s: %w", v.ID, err)
	}
	if err := d.chownTree(d.cred(uid), dir); err != nil {
		return fmt.Errorf("provision %s: %w", v.ID, err)
	}
	return nil
}

// imageInfo is what qemu-img says of a qcow2 image; a corrupt or foreign
// file is an error here rather than a guest that does not boot.
type imageInfo struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
}

func (d *Driver) imageInfo(ctx context.Context, path string) (imageInfo, error) {
	// -U: the base is in use, read-only, by running guests.
	out, err := exec.CommandContext(ctx, d.cfg.QEMUImg, "info", "-U", "--output=json", "-f", "qcow2", path).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return imageInfo{}, fmt.Errorf("not a valid qcow2 image: %s", strings.TrimSpace(string(ee.Stderr)))
		}
		return imageInfo{}, err
	}
	var info imageInfo
	if err := json.Unmarshal(out, &info); err != nil {
		return imageInfo{}, fmt.Errorf("qemu-img info: %w", err)
	}
	if info.Format != "qcow2" || info.VirtualSize <= 0 {
		return imageInfo{}, fmt.Errorf("not a valid qcow2 image (format %q, size %d)", info.Format, info.VirtualSize)
	}
	return info, nil
}

func checkFree(dir string, need uint64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	if free := st.Bavail * uint64(st.Bsize); free < need {
		return fmt.Errorf("%s has %d bytes free, want %d: %w", dir, free, need, ErrNoSpace)
	}
	return nil
}

// seedKey is what a key in the seed looks like: "TYPE BASE64".
var seedKey = regexp.MustCompile(`^[a-z0-9@.-]+ [A-Za-z0-9+/]+=*$`)

// metaData is the seed's meta-data. The owner's SSH keys go in its
// public-keys, not into user-data: cloud-init gives them to the default
// user (NoCloud's get_public_ssh_keys) on top of any ssh_authorized_keys
// of a #cloud-config, and the user-data (a cloud-config, a script, a MIME
// archive) reaches the guest byte for byte, so nothing has to be merged.
// Each key is "TYPE BASE64", re-marshalled by pkg/sshkey, so it needs no
// YAML quoting.
func metaData(v Spec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "instance-id: %s\nlocal-hostname: %s\n", v.ID, v.Hostname)
	if len(v.SSHKeys) > 0 {
		b.WriteString("public-keys:\n")
		for _, k := range v.SSHKeys {
			if seedKey.MatchString(k) { // never anything YAML would read as more
				fmt.Fprintf(&b, "  - %s\n", k)
			}
		}
	}
	return b.String()
}

// makeSeed writes a cloud-init NoCloud seed: an ISO 9660 volume labelled
// cidata holding meta-data and user-data.
func makeSeed(ctx context.Context, dir, out string, v Spec) error {
	src, err := os.MkdirTemp(dir, "seed-")
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer os.RemoveAll(src)
	meta := metaData(v)
	if err := os.WriteFile(filepath.Join(src, "meta-data"), []byte(meta), 0o644); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if err := os.WriteFile(filepath.Join(src, "user-data"), []byte(v.UserData), 0o644); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	var cmd *exec.Cmd
	if p, err := exec.LookPath("xorriso"); err == nil {
		cmd = exec.CommandContext(ctx, p, "-as", "mkisofs", "-quiet", "-o", out, "-V", "cidata", "-J", "-R", src)
	} else if p, err := exec.LookPath("genisoimage"); err == nil {
		cmd = exec.CommandContext(ctx, p, "-quiet", "-o", out, "-volid", "cidata", "-joliet", "-rock", src)
	} else {
		return errors.New("seed: neither xorriso nor genisoimage is installed (apt-get install xorriso)")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("seed: %s: %w: %s", filepath.Base(cmd.Path), err, strings.TrimSpace(string(b)))
	}
	return nil
}
