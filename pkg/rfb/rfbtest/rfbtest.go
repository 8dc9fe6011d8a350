// Package rfbtest boots the tiny test image in a real QEMU (TCG) with its
// VNC server on a unix socket, and waits for text on the guest's screen.
// Tests of the console proxy, the vmctl tunnel and pkg/rfb share it.
package rfbtest

import (
	"context"
	"image"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/rfb"
	"github.com/vmdhq/vmd/pkg/vm/vmtest"
)

// Image returns the path of images/tiny.qcow2 (built by make if missing),
// failing the test when it cannot be had.
func Image(t testing.TB) string { return vmtest.TinyImage(t) }

// StartQEMU boots the tiny image on a throwaway overlay with `-vnc
// unix:sock` and returns once the socket answers. QEMU is killed when the
// test ends.
func StartQEMU(t testing.TB, sock string) {
	t.Helper()
	base := Image(t)
	overlay := filepath.Join(t.TempDir(), "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, overlay).CombinedOutput(); err != nil {
		t.Fatalf("rfbtest: qemu-img (install qemu-utils: make deps): %v: %s", err, out)
	}
	if err := os.MkdirAll(filepath.Dir(sock), 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("qemu-system-x86_64", "-accel", "tcg", "-nodefaults", "-m", "128", "-vga", "std",
		"-display", "none", "-vnc", "unix:"+sock, "-serial", "null",
		"-drive", "file="+overlay+",if=virtio,format=qcow2")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("rfbtest: start qemu (install qemu-system-x86: make deps): %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	var err error
	up := testutil.WaitFor(10*time.Second, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		var c net.Conn
		if c, err = net.Dial("unix", sock); err == nil {
			c.Close()
		}
		return err == nil
	})
	select {
	case <-exited:
		t.Fatalf("rfbtest: qemu exited: %s", out.String())
	default:
	}
	if !up {
		t.Fatalf("rfbtest: vnc socket %s not up after 10 s: %v; qemu: %s", sock, err, out.String())
	}
}

// WaitForText polls full-screen snapshots until the screen has more than
// two colours (the guest printed something), up to timeout.
func WaitForText(ctx context.Context, t testing.TB, c *rfb.Client, timeout time.Duration) *image.RGBA {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		img, err := c.Snapshot(ctx)
		if err != nil {
			t.Fatalf("rfbtest: snapshot: %v", err)
		}
		if rfb.Colours(img, 3) > 1 {
			return img
		}
		select {
		case <-ctx.Done():
			t.Fatalf("rfbtest: screen still one colour after %s", timeout)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
