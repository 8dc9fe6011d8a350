package qemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/guestnet"
	"github.com/vmdhq/vmd/pkg/vm"
)

// ErrNoNetwork: the VM has no guest network on this node (network none,
// not running here, or vmd is shutting down).
var ErrNoNetwork = errors.New("vm has no network on this node")

// guestNet is a running guest's userspace network and the loop that keeps
// it attached to QEMU's stream socket.
type guestNet struct {
	n      *guestnet.Network
	cancel context.CancelFunc
	done   chan struct{} // closed when the attach loop has returned
}

// attachRetry is how long the attach loop waits before dialling QEMU's
// socket again after a failed dial or a dropped link.
const attachRetry = 200 * time.Millisecond

// startNet gives g its guest network when s asks for one: a guestnet.Network
// (the same addresses on every start and adoption, so a guest keeps its
// lease) and a loop that dials QEMU's net.sock and attaches, again after
// every drop, until the guest ends.
func (d *Driver) startNet(g *guest, s Spec, sock string) error {
	if s.Network != api.NetworkNAT {
		return nil
	}
	n, err := guestnet.New(guestnet.Config{GuestMAC: guestnet.GuestMAC(s.ID), MTU: guestMTU,
		Policy: guestnet.Policy{Allow: d.cfg.EgressAllow}, Log: d.log.With("vm", s.ID)})
	if err != nil {
		return fmt.Errorf("guest network of %s: %w", s.ID, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	gn := &guestNet{n: n, cancel: cancel, done: make(chan struct{})}
	g.mu.Lock()
	if g.netEnded {
		g.mu.Unlock()
		cancel()
		_ = n.Close()
		return nil // the guest is already gone
	}
	g.net = gn
	g.mu.Unlock()
	go func() {
		defer close(gn.done)
		var dialer net.Dialer
		for ctx.Err() == nil {
			conn, err := dialer.DialContext(ctx, "unix", sock)
			if err == nil {
				err = n.Attach(ctx, conn)
			}
			if errors.Is(err, guestnet.ErrClosed) || ctx.Err() != nil {
				return
			}
			t := time.NewTimer(attachRetry)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// closeNet ends g's network and its attach loop, waiting for both; later
// startNet calls do nothing. QEMU keeps listening, so a later vmd attaches again.
func (g *guest) closeNet() {
	g.mu.Lock()
	gn := g.net
	g.net, g.netEnded = nil, true
	g.mu.Unlock()
	if gn == nil {
		return
	}
	gn.cancel()
	_ = gn.n.Close()
	<-gn.done
}

func (d *Driver) network(id string) (*guestnet.Network, error) {
	g := d.get(id)
	if g == nil || !g.alive() {
		return nil, fmt.Errorf("vm %s: %w", id, ErrNoNetwork)
	}
	g.mu.Lock()
	gn := g.net
	g.mu.Unlock()
	if gn == nil {
		return nil, fmt.Errorf("vm %s: %w", id, ErrNoNetwork)
	}
	return gn.n, nil
}

// DialGuest opens a TCP connection to a running guest's port inside its
// network (no host port is bound). Errors: ErrNoNetwork, and guestnet's
// ErrNoLease, ErrPortClosed, ErrUnreachable, ErrInvalidPort, ErrClosed.
func (d *Driver) DialGuest(ctx context.Context, id string, port int) (net.Conn, error) {
	n, err := d.network(id)
	if err != nil {
		return nil, err
	}
	return n.DialGuest(ctx, port)
}

// Addresses are a running guest's addresses with prefix length, from its
// network's DHCP lease; empty before the guest asked for one.
func (d *Driver) Addresses(id string) []string {
	n, err := d.network(id)
	if err != nil {
		return nil
	}
	a, ok := n.Lease()
	if !ok {
		return nil
	}
	return []string{netip.PrefixFrom(a, guestnet.DefaultSubnet.Bits()).String()}
}

var _ vm.Addresser = (*Driver)(nil)

// guestMTU is the guest NIC's MTU, offered by QEMU (virtio-net host_mtu, so
// the guest's driver starts with it, no DHCP client needed) and used by its
// guestnet stack and DHCP. Large, as passt's default: the link's cost is
// per frame (one read or write on QEMU's stream socket, one interrupt and
// one pass through the guest's stack, slow under TCG).
const guestMTU = 65520
