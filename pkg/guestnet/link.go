package guestnet

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// link is the wire between a stack and QEMU's `-netdev stream` socket: each frame is a 4-byte
// big-endian length and an Ethernet frame, both ways, on one connection at a time.
//
// It replaces gvisor-tap-vsock's tap.Switch, which is built for many peers: it learns which
// connection a MAC is on only from received frames (so after a reattach it drops every frame
// for a silent guest), allocates whatever 32-bit length a peer sends, and can re-learn a MAC
// for a connection it has just dropped and then dereference the missing connection (a panic,
// reproduced by BenchmarkDialGuest* closing under load). One guest needs none of that.
type link struct {
	local, peer net.HardwareAddr // our MAC; the only source MAC accepted
	deliver     func(tcpip.NetworkProtocolNumber, *stack.PacketBuffer)

	mu   sync.Mutex // serialises writes and guards conn
	conn net.Conn
	wbuf []byte
}

var errFrameTooLong = errors.New("frame length out of range")

// DeliverNetworkPacket is called by the stack's link endpoint with a whole frame to send
// (tap.NetworkSwitch). Without a connection the frame is dropped, as on an unplugged cable.
// The write blocks while QEMU does not read, which holds back the stack's senders as a full
// NIC queue would.
func (l *link) DeliverNetworkPacket(_ tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return
	}
	b := binary.BigEndian.AppendUint32(l.wbuf[:0], uint32(pkt.Size()))
	for _, s := range pkt.AsSlices() {
		b = append(b, s...)
	}
	l.wbuf = b
	if _, err := l.conn.Write(b); err != nil {
		// A half-written frame breaks the stream: end this connection; Attach returns.
		l.conn.Close()
		l.conn = nil
	}
}

// set makes c the link's connection, closing the one before (Attach closes it first, without
// the lock, so that a write blocked on it returns).
func (l *link) set(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		l.conn.Close()
	}
	l.conn = c
}

// unset forgets c if it is still the link's connection.
func (l *link) unset(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == c {
		l.conn = nil
	}
}

// receive reads frames from c until it fails, delivering those for us (or broadcast) from
// the peer's MAC. A length shorter than an Ethernet header or longer than maxFrame ends it.
func (l *link) receive(c net.Conn) error {
	r := bufio.NewReaderSize(c, 64<<10)
	var size [4]byte
	for {
		if _, err := io.ReadFull(r, size[:]); err != nil {
			return fmt.Errorf("read frame length: %w", err)
		}
		n := binary.BigEndian.Uint32(size[:])
		if n < header.EthernetMinimumSize || n > maxFrame {
			return fmt.Errorf("%w: %d", errFrameTooLong, n)
		}
		f := make([]byte, n)
		if _, err := io.ReadFull(r, f); err != nil {
			return fmt.Errorf("read frame: %w", err)
		}
		eth := header.Ethernet(f)
		if dst := eth.DestinationAddress(); dst != tcpip.LinkAddress(l.local) && dst != header.EthernetBroadcastAddress {
			continue
		}
		if l.peer != nil && !bytes.Equal([]byte(eth.SourceAddress()), l.peer) {
			continue // only the guest's own MAC
		}
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(f[header.EthernetMinimumSize:])})
		l.deliver(eth.Type(), pkt)
		pkt.DecRef()
	}
}
