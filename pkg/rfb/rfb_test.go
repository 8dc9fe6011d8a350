package rfb_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/rfb"
	"github.com/vmdhq/vmd/pkg/rfb/rfbtest"
)

// TestQEMUScreen talks to a real QEMU's VNC server and reads the guest's text screen.
func TestQEMUScreen(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "vnc.sock")
	rfbtest.StartQEMU(t, sock)
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := rfb.Handshake(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Version != "RFB 003.008" || c.Width < 320 || c.Height < 200 || c.Name == "" {
		t.Fatalf("server init: %s %dx%d %q", c.Version, c.Width, c.Height, c.Name)
	}
	img := rfbtest.WaitForText(ctx, t, c, 20*time.Second)
	t.Logf("screen %dx%d %q, %d+ colours", c.Width, c.Height, c.Name, rfb.Colours(img, 16))
}
