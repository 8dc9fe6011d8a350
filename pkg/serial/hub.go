package serial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
)

// QEMU's socket chardev serves one client at a time, so vmd holds the one
// connection of each VM's port and shares it: every attachment sees what
// the guest prints from then on, and one of them, the writer, types.

// Notices an attachment is told, inline, as a terminal shows them.
const (
	NoticeWatching  = "\r\n[vmd: another connection is typing; this one only watches. Reconnect with write=true (vmctl console --serial --write) to take over.]\r\n"
	NoticeTakenOver = "\r\n[vmd: another connection took over typing; this one now only watches.]\r\n"
	NoticeWriter    = "\r\n[vmd: this connection types now.]\r\n"
)

// outQueue is how many reads of the port an attachment may fall behind
// before it is dropped: a stalled watcher must not stall the guest, whose
// serial output waits while vmd does not read.
const outQueue = 256

// ErrSlow ends an attachment that fell outQueue reads behind.
var ErrSlow = errors.New("serial console: too slow a reader, dropped")

// Hubs holds the shared serial connections of the VMs on this node.
type Hubs struct {
	// Dial connects to a VM's serial socket.
	Dial func(ctx context.Context, path string) (net.Conn, error)
	Log  *slog.Logger

	mu   sync.Mutex
	hubs map[string]*hub // by VM id
}

type hub struct {
	h       *Hubs
	vmID    string
	conn    net.Conn
	members []*Attachment // in attach order
	writer  *Attachment
	closed  bool
}

// Attachment is one watcher of a VM's serial port (an io.ReadWriteCloser):
// Read gives what the guest prints, Write types when this is the writer and
// is dropped otherwise (the attachment was told it only watches).
type Attachment struct {
	hub  *hub
	out  chan []byte
	done chan struct{}
	once sync.Once
	rest []byte
	err  error // why done closed; set before
}

// Attach joins vmID's port at path, connecting to it when nobody watches
// yet. The first attachment types; takeOver makes this one type instead,
// the former writer only watching.
func (hs *Hubs) Attach(ctx context.Context, vmID, path string, takeOver bool) (*Attachment, error) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.hubs == nil {
		hs.hubs = map[string]*hub{}
	}
	h := hs.hubs[vmID]
	if h == nil {
		// Under the lock, so two first watchers make one connection; the dial
		// of a live guest's socket is immediate.
		conn, err := hs.Dial(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("serial socket of vm %s: %w", vmID, err)
		}
		h = &hub{h: hs, vmID: vmID, conn: conn}
		hs.hubs[vmID] = h
		go h.read()
	}
	a := &Attachment{hub: h, out: make(chan []byte, outQueue), done: make(chan struct{})}
	h.members = append(h.members, a)
	switch {
	case h.writer == nil:
		h.writer = a
	case takeOver:
		h.writer.notice(NoticeTakenOver)
		h.writer = a
	default:
		a.notice(NoticeWatching)
	}
	return a, nil
}

// Watchers is the number of attachments to vmID's port.
func (hs *Hubs) Watchers(vmID string) int {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if h := hs.hubs[vmID]; h != nil {
		return len(h.members)
	}
	return 0
}

// read fans the port's output out until the connection ends (the guest
// stopped, or the last watcher left).
func (h *hub) read() {
	buf := make([]byte, 32<<10)
	for {
		n, err := h.conn.Read(buf)
		if n > 0 {
			b := append([]byte(nil), buf[:n]...)
			h.h.mu.Lock()
			for _, a := range h.members {
				select {
				case a.out <- b:
				default:
					go a.end(ErrSlow)
				}
			}
			h.h.mu.Unlock()
		}
		if err != nil {
			h.h.mu.Lock()
			ms := h.members
			h.closeLocked()
			h.h.mu.Unlock()
			for _, a := range ms {
				a.end(io.EOF)
			}
			return
		}
	}
}

// closeLocked drops the hub; hs.mu is held.
func (h *hub) closeLocked() {
	if h.closed {
		return
	}
	h.closed = true
	h.conn.Close()
	if h.h.hubs[h.vmID] == h {
		delete(h.h.hubs, h.vmID)
	}
}

// notice queues text for this attachment only; hs.mu is held or a is new.
func (a *Attachment) notice(s string) {
	select {
	case a.out <- []byte(s):
	default:
	}
}

// Writer reports whether a types.
func (a *Attachment) Writer() bool {
	a.hub.h.mu.Lock()
	defer a.hub.h.mu.Unlock()
	return a.hub.writer == a
}

// Read implements io.Reader.
func (a *Attachment) Read(p []byte) (int, error) {
	if len(a.rest) == 0 {
		select {
		case b := <-a.out:
			a.rest = b
		case <-a.done:
			select { // what was queued before the end is still delivered
			case b := <-a.out:
				a.rest = b
			default:
				return 0, a.err
			}
		}
	}
	n := copy(p, a.rest)
	a.rest = a.rest[n:]
	return n, nil
}

// Write implements io.Writer: the writer's bytes go to the guest; a
// watcher's are dropped.
func (a *Attachment) Write(p []byte) (int, error) {
	select {
	case <-a.done:
		return 0, a.err
	default:
	}
	h := a.hub
	h.h.mu.Lock()
	w := h.writer == a
	h.h.mu.Unlock()
	if !w {
		return len(p), nil
	}
	return h.conn.Write(p)
}

// Close leaves the port; the last to leave closes vmd's connection to it.
// A leaving writer hands typing to the longest-attached watcher.
func (a *Attachment) Close() error {
	a.end(io.EOF)
	return nil
}

func (a *Attachment) end(why error) {
	a.once.Do(func() {
		a.err = why
		close(a.done)
		h := a.hub
		h.h.mu.Lock()
		defer h.h.mu.Unlock()
		for i, m := range h.members {
			if m == a {
				h.members = append(h.members[:i:i], h.members[i+1:]...)
				break
			}
		}
		if h.writer == a {
			h.writer = nil
			if len(h.members) > 0 {
				h.writer = h.members[0]
				h.writer.notice(NoticeWriter)
			}
		}
		if len(h.members) == 0 {
			h.closeLocked()
		}
	})
}
