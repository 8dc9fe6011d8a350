package guestnet

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/sirupsen/logrus"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

const copyBuf = 32 << 10

// forwardTCP handles one guest connection to an outside address: judge, dial the literal
// address with a bounded timeout, and only then accept the guest's SYN.
func (n *Network) forwardTCP(r *tcp.ForwarderRequest) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		r.Complete(true)
		return
	}
	n.wg.Add(1)
	n.mu.Unlock()
	defer n.wg.Done()

	id := r.ID()
	dst, _ := netip.AddrFromSlice(id.LocalAddress.AsSlice())
	if err := n.policy.Permit(dst); err != nil {
		n.log.Debug("guest connection refused", "dst", dst, "port", id.LocalPort, "err", err)
		r.Complete(true)
		return
	}
	select {
	case n.sem <- struct{}{}:
		defer func() { <-n.sem }()
	default:
		// Debug, not Warn: a guest could otherwise fill the log.
		n.log.Debug("guest connection refused: too many connections", "dst", dst, "max", n.cfg.MaxConns)
		r.Complete(true)
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.DialTimeout)
	out, err := n.cfg.Dial(ctx, "tcp", netip.AddrPortFrom(dst, id.LocalPort).String())
	cancel()
	if err != nil {
		n.log.Debug("guest connection: dial failed", "dst", dst, "port", id.LocalPort, "err", err)
		r.Complete(true)
		return
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	r.Complete(false)
	if terr != nil {
		out.Close()
		return
	}
	in := gonet.NewTCPConn(&wq, ep)
	if !n.track(in, out) {
		return
	}
	defer n.untrack(in, out)
	splice(in, out)
}

// track registers both halves so Close can end them; false when the network is closing.
func (n *Network) track(cs ...net.Conn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		n.conns[c] = struct{}{}
	}
	return true
}

func (n *Network) untrack(cs ...net.Conn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range cs {
		delete(n.conns, c)
	}
}

type closeWriter interface{ CloseWrite() error }

// splice copies both ways with bounded buffers, passing a half-close on; an error in either
// direction ends both.
func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	one := func(dst, src net.Conn) {
		defer wg.Done()
		// Plain Reader/Writer: keeps io.Copy from picking a ReaderFrom with its own buffering.
		_, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, copyBuf))
		if cw, ok := dst.(closeWriter); err == nil && ok {
			_ = cw.CloseWrite()
			return
		}
		a.Close()
		b.Close()
	}
	wg.Add(2)
	go one(a, b)
	go one(b, a)
	wg.Wait()
	a.Close()
	b.Close()
}

var routeOnce sync.Once

// routeLogrus sends gvisor-tap-vsock's logrus output (it logs every link disconnect as an
// error) to slog at debug level, once per process: logrus is a global logger.
func routeLogrus() {
	routeOnce.Do(func() {
		logrus.SetOutput(io.Discard)
		logrus.AddHook(slogHook{})
	})
}

type slogHook struct{}

func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (slogHook) Fire(e *logrus.Entry) error {
	slog.Debug(e.Message, "component", "gvisor-tap-vsock", "level", e.Level.String())
	return nil
}
