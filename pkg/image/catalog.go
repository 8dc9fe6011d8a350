// Package image is a node's template catalog: the base qcow2 images VMs are
// created from. A template is a file NAME.qcow2 in the catalog directory
// (<data-dir>/images) with its SHA-256 recorded beside it in NAME.qcow2.sha256,
// in sha256sum's format. Templates come in through Import (copied,
// validated, checksummed, made read-only) or are dropped into the directory
// by hand, in which case the checksum is recorded the first time the catalog
// sees them (so drop them in with a rename, not a slow copy under the final
// name). Every VM overlay depends on its base byte for byte, so Verify
// re-checks the content before a base is used.
package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/dnslabel"
)

const (
	// Ext is the file name extension of a template.
	Ext = ".qcow2"
	// SumExt is appended to a template's file name for its checksum sidecar.
	SumExt = ".sha256"
)

// notFoundError is ErrNotFound's type; its NotFound method lets callers that
// do not import this package (pkg/vm) recognise it.
type notFoundError struct{}

func (notFoundError) Error() string  { return "template not found" }
func (notFoundError) NotFound() bool { return true }

// Errors of the catalog, matched with errors.Is; the server's error mapper
// gives them their API status.
var (
	ErrNotFound         error = notFoundError{}
	ErrInvalidName            = errors.New("template name must be a DNS label (a-z, 0-9, '-', at most 63)")
	ErrExists                 = errors.New("template already exists")
	ErrChecksumMismatch       = errors.New("template content does not match its recorded sha256")
	ErrCorrupt                = errors.New("not a usable qcow2 image")
)

// Catalog is the set of templates in one directory. It is safe for
// concurrent use; it keeps no state beyond a cache of file checks.
type Catalog struct {
	dir     string
	qemuImg string

	mu    sync.Mutex
	cache map[string]fileCheck
	// hashes counts full-content hashes, so tests can see the cache work.
	hashes int
}

// fileCheck is what was learnt of one file at one size and mtime.
type fileCheck struct {
	size    int64
	mtime   time.Time
	sha     string
	checked bool // qemu-img said it is a standalone qcow2
}

// NewCatalog returns the catalog of dir (<data-dir>/images). The directory
// is created on the first Import; a missing one lists as empty.
func NewCatalog(dir string) *Catalog {
	return &Catalog{dir: dir, qemuImg: "qemu-img", cache: map[string]fileCheck{}}
}

// Dir is the catalog's directory.
func (c *Catalog) Dir() string { return c.dir }

// Path is where template name's file is (or would be).
func (c *Catalog) Path(name string) string { return filepath.Join(c.dir, name+Ext) }

func (c *Catalog) sumPath(name string) string { return c.Path(name) + SumExt }

// List returns every template, sorted by name. Files whose name is not a
// DNS label (temporary files among them) are not templates.
func (c *Catalog) List(ctx context.Context) ([]api.Template, error) {
	ents, err := os.ReadDir(c.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return []api.Template{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list templates in %s: %w", c.dir, err)
	}
	out := []api.Template{}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), Ext)
		if !ok || !dnslabel.Valid(name) {
			continue
		}
		t, err := c.Get(ctx, name)
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile, a dangling symlink or not a file
		}
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Get returns template name. A template without a sidecar (dropped in by
// hand) gets one now; Get does not re-hash a file that has one (Verify does).
func (c *Catalog) Get(ctx context.Context, name string) (api.Template, error) {
	if !dnslabel.Valid(name) {
		return api.Template{}, fmt.Errorf("template %q: %w", name, ErrNotFound)
	}
	fi, err := c.stat(name)
	if err != nil {
		return api.Template{}, err
	}
	sum, err := c.recorded(name)
	if errors.Is(err, fs.ErrNotExist) {
		if sum, err = c.hash(ctx, name, fi); err != nil {
			return api.Template{}, err
		}
		if err := writeFileAtomic(c.sumPath(name), sumLine(sum, name)); err != nil {
			return api.Template{}, fmt.Errorf("record sha256 of template %s: %w", name, err)
		}
	} else if err != nil {
		return api.Template{}, err
	}
	p, err := c.props(name)
	if err != nil {
		return api.Template{}, err
	}
	return withProps(api.Template{Name: name, SizeBytes: fi.Size(), SHA256: sum, CreatedAt: fi.ModTime().UTC()}, p), nil
}

// ReadyLine is template name's ready line (a property), "" when it names
// none (the driver then takes its default).
func (c *Catalog) ReadyLine(name string) string {
	p, err := c.props(name)
	if err != nil {
		return ""
	}
	return p.ReadyLine
}

// Verify checks that template name is a standalone qcow2 image whose content
// still has the recorded sha256, and returns the path of its file for use
// as a backing file. The result is cached by size and mtime, so a second
// call on an unchanged file costs two stats and a small read.
func (c *Catalog) Verify(ctx context.Context, name string) (string, error) {
	t, err := c.Get(ctx, name)
	if err != nil {
		return "", err
	}
	p := c.Path(name)
	fi, err := c.stat(name)
	if err != nil {
		return "", err
	}
	sum, err := c.hash(ctx, name, fi)
	if err != nil {
		return "", err
	}
	if sum != t.SHA256 {
		return "", fmt.Errorf("template %s: %w (recorded %.12s…, file has %.12s…)", name, ErrChecksumMismatch, t.SHA256, sum)
	}
	c.mu.Lock()
	fc := c.cache[name]
	checked := fc.checked && fc.size == fi.Size() && fc.mtime.Equal(fi.ModTime())
	c.mu.Unlock()
	if !checked {
		if err := c.checkQcow2(ctx, p); err != nil {
			return "", fmt.Errorf("template %s: %w", name, err)
		}
		c.mu.Lock()
		if fc := c.cache[name]; fc.size == fi.Size() && fc.mtime.Equal(fi.ModTime()) {
			fc.checked = true
			c.cache[name] = fc
		}
		c.mu.Unlock()
	}
	return p, nil
}

// Import copies srcFile into the catalog as template name: the copy is
// written under a temporary name, checked with qemu-img (qcow2, no backing
// file), checksummed, made read-only (0444) and only then renamed into place.
func (c *Catalog) Import(ctx context.Context, name, srcFile string) (api.Template, error) {
	if !dnslabel.Valid(name) {
		return api.Template{}, fmt.Errorf("import %q: %w", name, ErrInvalidName)
	}
	if _, err := os.Lstat(c.Path(name)); err == nil {
		return api.Template{}, fmt.Errorf("import %s: %w", name, ErrExists)
	}
	src, err := os.Open(srcFile)
	if err != nil {
		return api.Template{}, fmt.Errorf("import %s: %w", name, err)
	}
	defer src.Close()
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return api.Template{}, fmt.Errorf("import %s: %w", name, err)
	}
	// A leading dot keeps the partial file out of List.
	tmp, err := os.CreateTemp(c.dir, "."+name+Ext+".import-*")
	if err != nil {
		return api.Template{}, fmt.Errorf("import %s: %w", name, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	if _, err := copyCtx(ctx, io.MultiWriter(tmp, h), src); err != nil {
		return api.Template{}, fmt.Errorf("import %s: copy %s: %w", name, srcFile, err)
	}
	if err := tmp.Sync(); err != nil {
		return api.Template{}, fmt.Errorf("import %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return api.Template{}, fmt.Errorf("import %s: %w", name, err)
	}
	// Checked on the copy, not the source, so what is checked is what stays.
	if err := c.checkQcow2(ctx, tmp.Name()); err != nil {
		return api.Template{}, fmt.Errorf("import %s from %s: %w", name, srcFile, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := os.Chmod(tmp.Name(), 0o444); err != nil {
		return api.Template{}, fmt.Errorf("import %s: %w", name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Checked again under the lock: two imports of one name must not both win.
	if _, err := os.Lstat(c.Path(name)); err == nil {
		return api.Template{}, fmt.Errorf("import %s: %w", name, ErrExists)
	}
	// The sidecar goes first, so the template never appears without it.
	if err := writeFileAtomic(c.sumPath(name), sumLine(sum, name)); err != nil {
		return api.Template{}, fmt.Errorf("import %s: record sha256: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), c.Path(name)); err != nil {
		return api.Template{}, fmt.Errorf("import %s: %w", name, err)
	}
	done = true
	syncDir(c.dir)
	fi, err := os.Stat(c.Path(name))
	if err != nil {
		return api.Template{}, fmt.Errorf("import %s: %w", name, err)
	}
	c.cache[name] = fileCheck{size: fi.Size(), mtime: fi.ModTime(), sha: sum, checked: true}
	p, err := c.props(name)
	if err != nil {
		return api.Template{}, err
	}
	return withProps(api.Template{Name: name, SizeBytes: fi.Size(), SHA256: sum, CreatedAt: fi.ModTime().UTC()}, p), nil
}

// stat follows symlinks (a template may link to an image elsewhere) and
// reports anything that is not a regular file as not found.
func (c *Catalog) stat(name string) (fs.FileInfo, error) {
	fi, err := os.Stat(c.Path(name))
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.Mode().IsRegular()) {
		return nil, fmt.Errorf("template %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	return fi, nil
}

// recorded reads the sidecar's checksum; fs.ErrNotExist when there is none.
func (c *Catalog) recorded(name string) (string, error) {
	b, err := os.ReadFile(c.sumPath(name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		return "", fmt.Errorf("template %s: read sha256: %w", name, err)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 || len(f[0]) != sha256.Size*2 {
		return "", fmt.Errorf("template %s: malformed %s", name, filepath.Base(c.sumPath(name)))
	}
	if _, err := hex.DecodeString(f[0]); err != nil {
		return "", fmt.Errorf("template %s: malformed %s: %w", name, filepath.Base(c.sumPath(name)), err)
	}
	return strings.ToLower(f[0]), nil
}

// hash returns the file's sha256, from the cache when size and mtime are
// those of the last hash.
func (c *Catalog) hash(ctx context.Context, name string, fi fs.FileInfo) (string, error) {
	c.mu.Lock()
	fc, ok := c.cache[name]
	c.mu.Unlock()
	if ok && fc.size == fi.Size() && fc.mtime.Equal(fi.ModTime()) {
		return fc.sha, nil
	}
	f, err := os.Open(c.Path(name))
	if err != nil {
		return "", fmt.Errorf("template %s: %w", name, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := copyCtx(ctx, h, f); err != nil {
		return "", fmt.Errorf("hash template %s: %w", name, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	// The stat taken after the read is what the hash stands for; a file
	// changed while it was read gets hashed again next time.
	after, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("template %s: %w", name, err)
	}
	c.mu.Lock()
	c.hashes++
	if after.Size() == fi.Size() && after.ModTime().Equal(fi.ModTime()) {
		c.cache[name] = fileCheck{size: fi.Size(), mtime: fi.ModTime(), sha: sum}
	}
	c.mu.Unlock()
	return sum, nil
}

// qemuImgInfo is the part of `qemu-img info --output=json` looked at.
type qemuImgInfo struct {
	Format          string `json:"format"`
	BackingFilename string `json:"backing-filename"`
	FormatSpecific  struct {
		Data struct {
			Corrupt bool `json:"corrupt"`
		} `json:"data"`
	} `json:"format-specific"`
}

// checkQcow2 asks qemu-img whether p is a qcow2 image standing on its own.
func (c *Catalog) checkQcow2(ctx context.Context, p string) error {
	// -U: a running VM may hold the base open; reading its header is safe.
	cmd := exec.CommandContext(ctx, c.qemuImg, "info", "-U", "--output=json", p)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("qemu-img not found (install qemu-utils: make deps): %w", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: qemu-img info: %s", ErrCorrupt, firstLine(stderr.String()))
	}
	var info qemuImgInfo
	if err := json.Unmarshal(out, &info); err != nil {
		return fmt.Errorf("%w: qemu-img info output: %v", ErrCorrupt, err)
	}
	switch {
	case info.Format != "qcow2":
		return fmt.Errorf("%w: format is %s", ErrCorrupt, info.Format)
	case info.BackingFilename != "":
		return fmt.Errorf("%w: has a backing file", ErrCorrupt)
	case info.FormatSpecific.Data.Corrupt:
		return fmt.Errorf("%w: qcow2 marked corrupt", ErrCorrupt)
	}
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func sumLine(sum, name string) []byte {
	return []byte(sum + "  " + name + Ext + "\n")
}

// copyCtx is io.Copy that gives up when ctx ends, for multi-GB images.
func copyCtx(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		r, rerr := src.Read(buf)
		if r > 0 {
			w, werr := dst.Write(buf[:r])
			n += int64(w)
			if werr != nil {
				return n, werr
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// writeFileAtomic writes b to p through a temporary file and a rename, so a
// reader sees the old content or the new, never a part.
func writeFileAtomic(p string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// syncDir makes a rename durable; a failure only weakens durability.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
