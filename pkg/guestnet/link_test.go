package guestnet

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// writeLog records each Write call separately.
type writeLog struct {
	net.Conn
	writes [][]byte
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.writes = append(w.writes, append([]byte(nil), p...))
	return len(p), nil
}

// TestLinkWritesFrameInOneWrite: a frame the stack hands over in pieces (its Ethernet header
// and its payload are separate slices) goes to QEMU as one write, the length and the frame
// together: a write per piece would be a wakeup of QEMU per piece, and a frame's length
// must never sit in the socket without its frame.
func TestLinkWritesFrameInOneWrite(t *testing.T) {
	w := &writeLog{}
	l := &link{local: DefaultGatewayMAC, peer: guestMAC}
	l.set(w)
	payload := bytes.Repeat([]byte{0xab}, 1000)
	for range 2 { // the second reuses the link's buffer
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
			ReserveHeaderBytes: header.EthernetMinimumSize,
			Payload:            buffer.MakeWithData(payload),
		})
		header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize)).Encode(&header.EthernetFields{
			SrcAddr: tcpip.LinkAddress(DefaultGatewayMAC), DstAddr: tcpip.LinkAddress(guestMAC), Type: header.IPv4ProtocolNumber,
		})
		if n := len(pkt.AsSlices()); n < 2 {
			t.Fatalf("the packet is %d slice(s); the test needs a frame in pieces", n)
		}
		l.DeliverNetworkPacket(header.IPv4ProtocolNumber, pkt)
		pkt.DecRef()
	}
	if len(w.writes) != 2 {
		t.Fatalf("%d writes for 2 frames, want one each", len(w.writes))
	}
	for _, b := range w.writes {
		if got, want := len(b), 4+header.EthernetMinimumSize+len(payload); got != want {
			t.Fatalf("write of %d bytes, want %d (length, header, payload)", got, want)
		}
		if n := binary.BigEndian.Uint32(b); int(n) != header.EthernetMinimumSize+len(payload) {
			t.Fatalf("length prefix %d, want %d", n, header.EthernetMinimumSize+len(payload))
		}
		if eth := header.Ethernet(b[4:]); eth.DestinationAddress() != tcpip.LinkAddress(guestMAC) || !bytes.Equal(b[4+header.EthernetMinimumSize:], payload) {
			t.Fatalf("frame is not the packet: %x", b[4:24])
		}
	}
}
