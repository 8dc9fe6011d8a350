package console

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/vmdhq/vmd/pkg/serial"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
)

// A console WebSocket opens the VM's screen (VNC) by default and its serial
// port with type=serial: one path with every check of ServeWS, a second
// target socket. Serial frames are raw bytes both ways; several may watch a
// port, the first types (or, with write=true, the one that takes over).

// SerialSocket implements SerialLocator.
func (l LayoutSockets) SerialSocket(v store.VM) string { return l.Layout.Socket(v.ID, vm.SerialSocket) }

// SerialLocator names a VM's serial socket; a SocketLocator without it
// serves no serial consoles.
type SerialLocator interface {
	SerialSocket(v store.VM) string
}

// Console target types (the WebSocket's type parameter).
const (
	TypeVNC    = "vnc"
	TypeSerial = "serial"
)

// targetType reads and checks the request's type, before anything is spent.
func targetType(r *http.Request) (string, error) {
	switch t := r.URL.Query().Get("type"); t {
	case "", TypeVNC:
		return TypeVNC, nil
	case TypeSerial:
		return TypeSerial, nil
	default:
		return "", fmt.Errorf("%w: type %q (want vnc or serial)", ErrBadHandshake, t)
	}
}

// dialTarget connects a session to its VM's screen or serial port.
func (c *Console) dialTarget(ctx context.Context, r *http.Request, v store.VM, s *session) (io.ReadWriteCloser, error) {
	if !s.serial {
		return c.dialVNC(ctx, c.cfg.Sockets.VNCSocket(v))
	}
	loc, ok := c.cfg.Sockets.(SerialLocator)
	if !ok {
		return nil, fmt.Errorf("no serial socket locator")
	}
	return c.hubs().Attach(ctx, v.ID, loc.SerialSocket(v), r.URL.Query().Get("write") == "true")
}

// SerialWatchers is the number of open serial consoles of a VM.
func (c *Console) SerialWatchers(vmID string) int { return c.hubs().Watchers(vmID) }

func (c *Console) hubs() *serial.Hubs {
	c.serialOnce.Do(func() {
		c.serial = &serial.Hubs{Log: c.log, Dial: func(ctx context.Context, path string) (net.Conn, error) {
			return c.dialVNC(ctx, path) // the same retried unix dial
		}}
	})
	return c.serial
}
