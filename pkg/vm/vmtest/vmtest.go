// Package vmtest gives tests the real parts they boot: the tiny test image
// and the QEMU binaries. A test that needs them fails when they are missing.
package vmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var build sync.Once

// RepoRoot is the directory of go.mod above the test's working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("vmtest: no go.mod above the test's directory")
		}
		dir = parent
	}
}

// NeedQEMU fails the test when QEMU or qemu-img is not installed.
func NeedQEMU(t testing.TB) {
	t.Helper()
	for _, b := range []string{"qemu-system-x86_64", "qemu-img"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("%s is required (make deps installs qemu-system-x86 and qemu-utils): %v", b, err)
		}
	}
}

// TinyImage returns images/tiny.qcow2, running `make image` once if it is
// missing, and fails the test when it still is.
func TinyImage(t testing.TB) string {
	t.Helper()
	NeedQEMU(t)
	root := RepoRoot(t)
	img := filepath.Join(root, "images", "tiny.qcow2")
	build.Do(func() {
		if _, err := os.Stat(img); err == nil {
			return
		}
		if out, err := exec.Command("make", "-C", root, "image").CombinedOutput(); err != nil {
			t.Logf("make image: %v\n%s", err, out)
		}
	})
	if _, err := os.Stat(img); err != nil {
		t.Fatalf("tiny image: %v (run `make image`)", err)
	}
	return img
}

var buildDebian sync.Once

// DebianImage returns images/debian-12.qcow2, running `make image-debian`
// once if it is missing (minutes, as root), and fails the test when it still is.
func DebianImage(t testing.TB) string {
	t.Helper()
	NeedQEMU(t)
	root := RepoRoot(t)
	img := filepath.Join(root, "images", "debian-12.qcow2")
	buildDebian.Do(func() {
		if _, err := os.Stat(img); err == nil {
			return
		}
		if out, err := exec.Command("make", "-C", root, "image-debian").CombinedOutput(); err != nil {
			t.Logf("make image-debian: %v\n%s", err, out)
		}
	})
	if _, err := os.Stat(img); err != nil {
		t.Fatalf("debian image: %v (run `make image-debian` as root)", err)
	}
	return img
}
