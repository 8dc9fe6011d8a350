package qemu

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/vmdhq/vmd/pkg/vm"
)

// UIDRange is a block of uids (and the gids of the same numbers) that vmd
// gives out one per guest, so no guest's QEMU can open another's files.
type UIDRange struct {
	First, Count uint32
}

// DefaultUIDs is the first 64 Ki block of the range systemd leaves unused
// (0x70000000, above nspawn's container range, below the foreign-uid range)
// and far above the 100000+ blocks useradd writes to /etc/subuid.
var DefaultUIDs = UIDRange{First: 0x70000000, Count: 65536}

// ParseUIDRange reads "FIRST-LAST" (both included).
func ParseUIDRange(s string) (UIDRange, error) {
	a, b, ok := strings.Cut(s, "-")
	first, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 32)
	last, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 32)
	switch {
	case !ok || err1 != nil || err2 != nil:
		return UIDRange{}, fmt.Errorf("uid range %q: want FIRST-LAST, e.g. %s", s, DefaultUIDs)
	case first == 0 || last < first:
		return UIDRange{}, fmt.Errorf("uid range %q: want 0 < FIRST <= LAST", s)
	case last >= 1<<31:
		// Many tools treat ids from 2^31 on as negative (systemd's UIDS-GIDS.md).
		return UIDRange{}, fmt.Errorf("uid range %q: LAST must be below 2147483648", s)
	}
	return UIDRange{First: uint32(first), Count: uint32(last - first + 1)}, nil
}

func (r UIDRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.First+r.Count-1) }

func (r UIDRange) contains(u uint32) bool { return u >= r.First && u-r.First < r.Count }

func (r UIDRange) overlaps(first, count uint64) bool {
	return first < uint64(r.First)+uint64(r.Count) && uint64(r.First) < first+count
}

// owners decides which uid each guest's QEMU runs as.
type owners struct {
	// shared, if set, is the one user every guest runs as (--qemu-user).
	shared *syscall.Credential
	// perGuest: each VM directory's owner, from r, is its guest's uid.
	perGuest bool
	r        UIDRange
	groups   []uint32 // supplementary groups for every guest (kvm for /dev/kvm)
}

// newOwners picks how guests are separated: nothing to do unless vmd is
// root; a named user shares one uid; otherwise one uid per guest from r.
func newOwners(name string, r UIDRange, accel string) (owners, error) {
	if os.Geteuid() != 0 {
		return owners{}, nil
	}
	var groups []uint32
	if accel == "kvm" {
		// /dev/kvm is root:kvm 0660: membership opens it and nothing else.
		if g, err := user.LookupGroup("kvm"); err == nil {
			gid, _ := strconv.Atoi(g.Gid)
			groups = append(groups, uint32(gid))
		}
	}
	if name != "" {
		u, err := user.Lookup(name)
		if err != nil {
			return owners{}, fmt.Errorf("qemu user %s: %w", name, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if uid == 0 {
			return owners{}, fmt.Errorf("qemu user %s is root", name)
		}
		// Groups set (empty, not NoSetGroups): QEMU must not keep root's supplementary groups.
		return owners{shared: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: append([]uint32{}, groups...)}}, nil
	}
	if r.Count == 0 {
		r = DefaultUIDs
	}
	if err := checkUnused(r); err != nil {
		return owners{}, err
	}
	return owners{perGuest: true, r: r, groups: groups}, nil
}

// checkUnused refuses a range that holds a known account or a subordinate
// id block: a guest's uid must own nothing but that guest's files.
func checkUnused(r UIDRange) error {
	if f, err := os.Open("/etc/passwd"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Split(sc.Text(), ":")
			if len(fields) < 3 {
				continue
			}
			if id, err := strconv.ParseUint(fields[2], 10, 32); err == nil && r.contains(uint32(id)) {
				return fmt.Errorf("qemu uid range %s holds user %s (%d): pick another --qemu-uid-range", r, fields[0], id)
			}
		}
	}
	for _, p := range []string{"/etc/subuid", "/etc/subgid"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			fields := strings.Split(strings.TrimSpace(line), ":")
			if len(fields) != 3 {
				continue
			}
			first, err1 := strconv.ParseUint(fields[1], 10, 32)
			count, err2 := strconv.ParseUint(fields[2], 10, 32)
			if err1 == nil && err2 == nil && r.overlaps(first, count) {
				return fmt.Errorf("qemu uid range %s overlaps %s's block %s:%s in %s: pick another --qemu-uid-range",
					r, fields[0], fields[1], fields[2], p)
			}
		}
	}
	return nil
}

// dirOwner is the uid a VM directory belongs to.
func dirOwner(dir string) (uint32, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return 0, err
	}
	return st.Sys().(*syscall.Stat_t).Uid, nil
}

// claim makes a VM's directory (0700) and gives it to the uid its guest
// will run as: with per-guest uids, the lowest one no other VM directory
// has. The directory's owner is the record of that choice.
func (d *Driver) claim(dir string) error {
	if !d.own.perGuest {
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
		return d.chown(d.cred(0), dir)
	}
	// One claim at a time, so two provisions cannot pick the same uid.
	d.uidMu.Lock()
	defer d.uidMu.Unlock()
	uid, err := d.freeUID()
	if err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	return d.chown(d.cred(uid), dir)
}

// freeUID is the lowest uid of the range no VM directory owns.
func (d *Driver) freeUID() (uint32, error) {
	dirs, err := filepath.Glob(filepath.Join(d.cfg.Layout.DataDir, "vms", "*", "*"))
	if err != nil {
		return 0, err
	}
	used := make(map[uint32]bool, len(dirs))
	for _, p := range dirs {
		if u, err := dirOwner(p); err == nil {
			used[u] = true
		}
	}
	for i := uint32(0); i < d.own.r.Count; i++ {
		if u := d.own.r.First + i; !used[u] {
			return u, nil
		}
	}
	return 0, fmt.Errorf("all %d uids of the qemu uid range %s are taken", d.own.r.Count, d.own.r)
}

// cred is the credential a guest whose directory belongs to uid runs with
// (nil: as vmd itself).
func (d *Driver) cred(uid uint32) *syscall.Credential {
	switch {
	case d.own.shared != nil:
		return d.own.shared
	case d.own.perGuest:
		return &syscall.Credential{Uid: uid, Gid: uid, Groups: append([]uint32{}, d.own.groups...)}
	}
	return nil
}

// guestCred is the credential s's QEMU runs with. A VM directory that
// belongs to no uid of the range (made by an older vmd for a shared user,
// or left by a crash mid-provision) is claimed again and its files handed
// over, so every launch runs under the guest's own uid.
func (d *Driver) guestCred(s Spec) (*syscall.Credential, error) {
	dir := d.cfg.Layout.VMDir(s.OwnerID, s.ID)
	if !d.own.perGuest {
		c := d.cred(0)
		return c, d.chownTree(c, dir)
	}
	uid, err := dirOwner(dir)
	if err != nil {
		return nil, err
	}
	if !d.own.r.contains(uid) {
		d.uidMu.Lock()
		uid, err = d.freeUID()
		if err == nil {
			err = d.chown(d.cred(uid), dir)
		}
		d.uidMu.Unlock()
		if err != nil {
			return nil, err
		}
		d.log.Info("qemu: vm directory given its own uid", "vm", s.ID, "uid", uid)
	}
	c := d.cred(uid)
	return c, d.chownTree(c, dir)
}

// chown gives paths to c's user (nothing when c is nil: no privilege drop).
func (d *Driver) chown(c *syscall.Credential, paths ...string) error {
	if c == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Lchown(p, int(c.Uid), int(c.Gid)); err != nil {
			return err
		}
	}
	return nil
}

// chownTree gives dir and what is in it to c's user, leaving vmd's own
// log alone, and makes the files private (0600).
func (d *Driver) chownTree(c *syscall.Credential, dir string) error {
	if c == nil {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.Name() == vm.QEMULog {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if st := info.Sys().(*syscall.Stat_t); st.Uid != c.Uid || st.Gid != c.Gid {
			if err := os.Lchown(p, int(c.Uid), int(c.Gid)); err != nil {
				return err
			}
		}
		if !e.IsDir() && e.Type().IsRegular() && info.Mode().Perm()&0o077 != 0 {
			return os.Chmod(p, info.Mode().Perm()&0o700)
		}
		return nil
	})
}
