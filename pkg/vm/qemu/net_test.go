package qemu

import (
	"bufio"
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/guestnet"
	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/vmtest"
)

// sshBanner dials the guest's port 22 inside its network and reads the
// SSH server's first line.
func sshBanner(t *testing.T, d *Driver, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := d.DialGuest(ctx, id, 22)
	if err != nil {
		t.Fatalf("dial guest port 22: %v", err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read ssh banner: %v", err)
	}
	return line
}

// TestDriverNetwork: a nat guest gets its lease from the driver's guest
// network, answers on its SSH port through DialGuest, keeps its address when
// a new driver adopts it, and loses the network (with no goroutine left)
// when it stops; a guest with network none has none.
func TestDriverNetwork(t *testing.T) {
	t.Parallel()
	base := tinyImage(t)
	l := vmtest.Layout(t)
	ctx := context.Background()
	d1 := newDriver(t, l)
	v := testVM("net")
	v.Network = api.NetworkNAT
	if err := d1.Provision(ctx, v, base); err != nil {
		t.Fatal(err)
	}
	if err := d1.Launch(ctx, v); err != nil {
		t.Fatal(err)
	}
	waitSerial(t, filepath.Join(l.VMDir(v.OwnerID, v.ID), vm.SerialFile), "vmd-tiny: ip 192.168.127.2", 120*time.Second)
	testutil.Eventually(t, 30*time.Second, "lease", func() bool { return len(d1.Addresses(v.ID)) == 1 })
	if a := d1.Addresses(v.ID); a[0] != "192.168.127.2/24" {
		t.Fatalf("addresses = %v", a)
	}
	testutil.Eventually(t, 60*time.Second, "dropbear listening", func() bool {
		c, err := d1.DialGuest(ctx, v.ID, 22)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if b := sshBanner(t, d1, v.ID); !strings.HasPrefix(b, "SSH-2.0-") {
		t.Fatalf("banner %q", b)
	}
	if _, err := d1.DialGuest(ctx, v.ID, 9); !errors.Is(err, guestnet.ErrPortClosed) {
		t.Fatalf("dial closed port: %v, want ErrPortClosed", err)
	}
	if _, err := d1.DialGuest(ctx, v.ID, 0); !errors.Is(err, guestnet.ErrInvalidPort) {
		t.Fatalf("dial port 0: %v, want ErrInvalidPort", err)
	}

	// vmd restarts: the old driver lets go, a new one adopts and reattaches.
	d1.Close()
	if _, err := d1.DialGuest(ctx, v.ID, 22); !errors.Is(err, ErrNoNetwork) {
		t.Fatalf("closed driver dial: %v, want ErrNoNetwork", err)
	}
	d2 := newDriver(t, l)
	if ok, err := d2.Adopt(ctx, v); !ok || err != nil {
		t.Fatalf("adopt: %v %v", ok, err)
	}
	testutil.Eventually(t, 30*time.Second, "lease after adoption", func() bool { return len(d2.Addresses(v.ID)) == 1 })
	if b := sshBanner(t, d2, v.ID); !strings.HasPrefix(b, "SSH-2.0-") {
		t.Fatalf("banner after adoption %q", b)
	}

	goroutines := runtime.NumGoroutine()
	if err := d2.Stop(ctx, v.ID, closedChan); err != nil {
		t.Fatal(err)
	}
	if _, err := d2.DialGuest(ctx, v.ID, 22); !errors.Is(err, ErrNoNetwork) {
		t.Fatalf("stopped guest dial: %v, want ErrNoNetwork", err)
	}
	if a := d2.Addresses(v.ID); len(a) != 0 {
		t.Fatalf("stopped guest addresses %v", a)
	}
	testutil.Eventually(t, 10*time.Second, "network goroutines gone", func() bool { return runtime.NumGoroutine() < goroutines })

	none := testVM("nonet")
	none.Network = api.NetworkNone
	if err := d2.Provision(ctx, none, base); err != nil {
		t.Fatal(err)
	}
	if err := d2.Launch(ctx, none); err != nil {
		t.Fatal(err)
	}
	if _, err := d2.DialGuest(ctx, none.ID, 22); !errors.Is(err, ErrNoNetwork) {
		t.Fatalf("network none dial: %v, want ErrNoNetwork", err)
	}
}
