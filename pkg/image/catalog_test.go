package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// These tests use the real qemu-img and boot nothing.

func needQemuImg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatalf("qemu-img not found (install qemu-utils: make deps): %v", err)
	}
}

func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	needQemuImg(t)
	if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// makeQcow2 writes a small qcow2 with some data in it, so two images made
// with different fill bytes differ in content.
func makeQcow2(t *testing.T, p string, fill byte) {
	t.Helper()
	raw := p + ".raw"
	data := make([]byte, 256<<10)
	for i := range data {
		data[i] = fill
	}
	if err := os.WriteFile(raw, data, 0o644); err != nil {
		t.Fatal(err)
	}
	qemuImg(t, "convert", "-q", "-f", "raw", "-O", "qcow2", raw, p)
	os.Remove(raw)
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// dirNames lists dir, so tests can see no temporary file was left behind.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestImport(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	good := filepath.Join(src, "good.qcow2")
	makeQcow2(t, good, 0xab)
	rawFile := filepath.Join(src, "disk.raw")
	if err := os.WriteFile(rawFile, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(src, "overlay.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", good, overlay)
	garbage := filepath.Join(src, "garbage.qcow2")
	if err := os.WriteFile(garbage, []byte("QFI\xfbnot really"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		tmpl    string
		src     string
		preload bool // a template of that name exists already
		wantErr error
		errText string
	}{
		{name: "qcow2", tmpl: "tiny", src: good},
		{name: "dashed name", tmpl: "debian-12", src: good},
		{name: "upper case name", tmpl: "Tiny", src: good, wantErr: ErrInvalidName},
		{name: "dotted name", tmpl: "a.b", src: good, wantErr: ErrInvalidName},
		{name: "empty name", tmpl: "", src: good, wantErr: ErrInvalidName},
		{name: "trailing dash", tmpl: "tiny-", src: good, wantErr: ErrInvalidName},
		{name: "too long", tmpl: strings.Repeat("a", 64), src: good, wantErr: ErrInvalidName},
		{name: "raw file", tmpl: "raw", src: rawFile, wantErr: ErrCorrupt, errText: "format is raw"},
		{name: "backing file", tmpl: "ov", src: overlay, wantErr: ErrCorrupt, errText: "backing file"},
		{name: "garbage", tmpl: "junk", src: garbage, wantErr: ErrCorrupt},
		{name: "missing source", tmpl: "gone", src: filepath.Join(src, "nope.qcow2"), wantErr: os.ErrNotExist},
		{name: "exists", tmpl: "tiny", src: good, preload: true, wantErr: ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "images")
			c := NewCatalog(dir)
			if tt.preload {
				if _, err := c.Import(ctx, tt.tmpl, tt.src); err != nil {
					t.Fatalf("first import: %v", err)
				}
			}
			before := dirNames(t, dir)
			got, err := c.Import(ctx, tt.tmpl, tt.src)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Import error = %v, want %v", err, tt.wantErr)
				}
				if tt.errText != "" && !strings.Contains(err.Error(), tt.errText) {
					t.Errorf("error %q does not mention %q", err, tt.errText)
				}
				if after := dirNames(t, dir); strings.Join(after, ",") != strings.Join(before, ",") {
					t.Errorf("failed import changed the directory: %v -> %v", before, after)
				}
				return
			}
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			want := fileSum(t, tt.src)
			if got.Name != tt.tmpl || got.SHA256 != want || got.SizeBytes <= 0 || got.CreatedAt.IsZero() {
				t.Errorf("Import = %+v, want name %s sha %s", got, tt.tmpl, want)
			}
			p := filepath.Join(dir, tt.tmpl+".qcow2")
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o444 {
				t.Errorf("mode = %v, want 0444", fi.Mode().Perm())
			}
			if fi.Size() != got.SizeBytes {
				t.Errorf("size %d, template says %d", fi.Size(), got.SizeBytes)
			}
			side, err := os.ReadFile(p + ".sha256")
			if err != nil {
				t.Fatal(err)
			}
			if string(side) != want+"  "+tt.tmpl+".qcow2\n" {
				t.Errorf("sidecar = %q", side)
			}
			if names := dirNames(t, dir); len(names) != 2 {
				t.Errorf("directory holds %v, want the image and its sidecar", names)
			}
			g, err := c.Get(ctx, tt.tmpl)
			if err != nil || g != got {
				t.Errorf("Get = %+v, %v; want %+v", g, err, got)
			}
			if path, err := c.Verify(ctx, tt.tmpl); err != nil || path != p {
				t.Errorf("Verify = %q, %v; want %q", path, err, p)
			}
		})
	}
}

func TestListAndGet(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	makeQcow2(t, filepath.Join(dir, "b-hand.qcow2"), 1)
	makeQcow2(t, filepath.Join(dir, "a.qcow2"), 2)
	// None of these is a template.
	for _, n := range []string{"Bad_Name.qcow2", ".a.qcow2.import-123", "notes.txt", "c.raw", "-x.qcow2"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "dir.qcow2"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "missing"), filepath.Join(dir, "dangling.qcow2")); err != nil {
		t.Fatal(err)
	}
	// A symlink to an image elsewhere is a template (make run links the tiny image).
	elsewhere := filepath.Join(t.TempDir(), "tiny.qcow2")
	makeQcow2(t, elsewhere, 3)
	if err := os.Symlink(elsewhere, filepath.Join(dir, "linked.qcow2")); err != nil {
		t.Fatal(err)
	}

	c := NewCatalog(dir)
	ts, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tm := range ts {
		names = append(names, tm.Name)
	}
	if got := strings.Join(names, ","); got != "a,b-hand,linked" {
		t.Fatalf("List names = %s, want a,b-hand,linked", got)
	}
	for _, tm := range ts {
		p := filepath.Join(dir, tm.Name+".qcow2")
		if want := fileSum(t, p); tm.SHA256 != want {
			t.Errorf("%s: sha %s, want %s", tm.Name, tm.SHA256, want)
		}
		if _, err := os.Stat(p + ".sha256"); err != nil {
			t.Errorf("%s: no sidecar after List: %v", tm.Name, err)
		}
	}
	hashed := c.hashes

	tests := []struct {
		name    string
		tmpl    string
		wantErr error
	}{
		{name: "hand placed", tmpl: "b-hand"},
		{name: "symlink", tmpl: "linked"},
		{name: "missing", tmpl: "nope", wantErr: ErrNotFound},
		{name: "invalid name", tmpl: "../a", wantErr: ErrNotFound},
		{name: "directory", tmpl: "dir", wantErr: ErrNotFound},
		{name: "dangling", tmpl: "dangling", wantErr: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Get(ctx, tt.tmpl)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Get error = %v, want %v", err, tt.wantErr)
				}
				var nf interface{ NotFound() bool }
				if !errors.As(err, &nf) || !nf.NotFound() {
					t.Errorf("error %v has no NotFound() for pkg/vm", err)
				}
				return
			}
			if err != nil || got.Name != tt.tmpl || got.SHA256 == "" {
				t.Fatalf("Get = %+v, %v", got, err)
			}
		})
	}
	if c.hashes != hashed {
		t.Errorf("Get re-hashed files that have a sidecar (%d -> %d hashes)", hashed, c.hashes)
	}

	// A fresh catalog (a restarted vmd) reads the sidecars, hashing nothing.
	c2 := NewCatalog(dir)
	if ts2, err := c2.List(ctx); err != nil || len(ts2) != 3 || c2.hashes != 0 {
		t.Errorf("second List: %d templates, err %v, %d hashes; want 3, nil, 0", len(ts2), err, c2.hashes)
	}

	if ts, err := NewCatalog(filepath.Join(dir, "absent")).List(ctx); err != nil || len(ts) != 0 || ts == nil {
		t.Errorf("List of a missing dir = %#v, %v; want an empty list", ts, err)
	}
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		tamper  func(t *testing.T, p string)
		wantErr error
	}{
		{name: "unchanged"},
		{
			name: "content changed",
			tamper: func(t *testing.T, p string) {
				makeQcow2(t, p+".new", 0xcd)
				if err := os.Rename(p+".new", p); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrChecksumMismatch,
		},
		{
			name: "same size and a new mtime",
			tamper: func(t *testing.T, p string) {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)-1] ^= 0xff
				if err := os.Chmod(p, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
				future := time.Now().Add(time.Hour)
				if err := os.Chtimes(p, future, future); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrChecksumMismatch,
		},
		{
			name: "touched only",
			tamper: func(t *testing.T, p string) {
				future := time.Now().Add(time.Hour)
				if err := os.Chtimes(p, future, future); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "removed",
			tamper: func(t *testing.T, p string) {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(t.TempDir(), "src.qcow2")
			makeQcow2(t, src, 0x11)
			c := NewCatalog(dir)
			if _, err := c.Import(ctx, "tiny", src); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "tiny.qcow2")
			if _, err := c.Verify(ctx, "tiny"); err != nil {
				t.Fatalf("Verify before tampering: %v", err)
			}
			if tt.tamper != nil {
				tt.tamper(t, p)
			}
			got, err := c.Verify(ctx, "tiny")
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != p {
				t.Fatalf("Verify = %q, %v; want %q", got, err, p)
			}
		})
	}
}

func TestVerifyCorruptDroppedIn(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "junk.qcow2"), []byte("this is not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := NewCatalog(dir)
	if _, err := c.Get(ctx, "junk"); err != nil {
		t.Fatalf("Get of a dropped-in file: %v", err)
	}
	if _, err := c.Verify(ctx, "junk"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify = %v, want ErrCorrupt", err)
	}
}

func TestVerifyCaches(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	makeQcow2(t, filepath.Join(dir, "tiny.qcow2"), 7)
	c := NewCatalog(dir)
	// Point qemu-img at nothing after the first check: a cached Verify must
	// neither re-hash nor run qemu-img again.
	if _, err := c.Verify(ctx, "tiny"); err != nil {
		t.Fatal(err)
	}
	hashed := c.hashes
	c.qemuImg = filepath.Join(dir, "no-such-qemu-img")
	for range 3 {
		if _, err := c.Verify(ctx, "tiny"); err != nil {
			t.Fatalf("cached Verify: %v", err)
		}
	}
	if c.hashes != hashed {
		t.Errorf("unchanged file hashed again: %d -> %d", hashed, c.hashes)
	}
}

func TestMalformedSidecar(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	makeQcow2(t, filepath.Join(dir, "tiny.qcow2"), 7)
	if err := os.WriteFile(filepath.Join(dir, "tiny.qcow2.sha256"), []byte("xyz  tiny.qcow2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := NewCatalog(dir)
	if _, err := c.Get(ctx, "tiny"); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("Get = %v, want a malformed-sidecar error", err)
	}
}

func TestImportCanceled(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src.qcow2")
	makeQcow2(t, src, 1)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewCatalog(dir).Import(ctx, "tiny", src); !errors.Is(err, context.Canceled) {
		t.Fatalf("Import = %v, want context.Canceled", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("canceled import left %v", names)
	}
}

func TestReadyLine(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	makeQcow2(t, filepath.Join(dir, "a.qcow2"), 1)
	c := NewCatalog(dir)
	if got := c.ReadyLine("a"); got != "" {
		t.Fatalf("ready line without properties = %q", got)
	}
	if err := c.SetProps("a", Props{ReadyLine: "debian: up"}); err != nil {
		t.Fatal(err)
	}
	tp, err := c.Get(ctx, "a")
	if err != nil || tp.ReadyLine != "debian: up" || c.ReadyLine("a") != "debian: up" {
		t.Fatalf("template = %+v, %v", tp, err)
	}
	// The properties file is not a template of its own.
	if ts, err := c.List(ctx); err != nil || len(ts) != 1 {
		t.Fatalf("list = %v, %v", ts, err)
	}
}
