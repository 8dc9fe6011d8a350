package console

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// errViewOnlyProtocol: a view-only client sent what the filter cannot
// follow, so it cannot tell input from the rest; the session is closed.
var errViewOnlyProtocol = errors.New("view-only console: unexpected rfb from the client")

// inputFilter follows a client's RFB stream (RFC 6143 §7, and the QEMU and
// noVNC extensions noVNC sends) and passes on only what cannot change the
// guest: the handshake, SetPixelFormat, SetEncodings,
// FramebufferUpdateRequest, EnableContinuousUpdates and fences. Key and
// pointer events, cut text (the clipboard), QEMU's extended key and audio
// messages and desktop resizes are dropped. ClientInit's shared flag is
// forced on, so a viewer cannot make QEMU disconnect the others. A stream
// the filter cannot follow is an error: guessing could let input through.
type inputFilter struct {
	st   int
	need int    // bytes of the current field still to come
	acc  []byte // the current header field (payloads are streamed)
	pass bool   // the current message is forwarded
}

const (
	fVersion = iota
	fSecType
	fAuth
	fInit
	fType
	fRest // the rest of a fixed-size message
	fEncHdr
	fCutHdr
	fFenceHdr
	fSizeHdr
	fQEMU
	fQEMUAudio
	fPayload
)

func newInputFilter() *inputFilter { return &inputFilter{st: fVersion, need: 12, pass: true} }

func (f *inputFilter) expect(st, n int) {
	f.st, f.need, f.acc = st, n, f.acc[:0]
	if n == 0 {
		f.st, f.need = fType, 1
	}
}

// filter appends to out the part of p that may reach the VM.
func (f *inputFilter) filter(p, out []byte) ([]byte, error) {
	for len(p) > 0 {
		k := min(f.need, len(p))
		chunk := p[:k]
		p = p[k:]
		f.need -= k
		if f.st == fPayload {
			if f.pass {
				out = append(out, chunk...)
			}
		} else {
			f.acc = append(f.acc, chunk...)
		}
		if f.need > 0 {
			continue
		}
		var err error
		if out, err = f.step(out); err != nil {
			return out, err
		}
	}
	return out, nil
}

// step handles a complete field.
func (f *inputFilter) step(out []byte) ([]byte, error) {
	b := f.acc
	emit := func() {
		if f.pass {
			out = append(out, b...)
		}
	}
	switch f.st {
	case fVersion:
		// "RFB 003.008\n"; 3.3 lets the server pick the security type
		// unseen by this side, so 3.7 and later only.
		if string(b[:4]) != "RFB " || b[11] != '\n' || string(b[4:11]) < "003.007" {
			return out, fmt.Errorf("%w: version %q", errViewOnlyProtocol, b)
		}
		emit()
		f.expect(fSecType, 1)
	case fSecType:
		emit()
		switch b[0] {
		case 1: // None
			f.expect(fInit, 1)
		case 2: // VNC authentication: the 16-byte response
			f.expect(fAuth, 16)
		default:
			return out, fmt.Errorf("%w: security type %d", errViewOnlyProtocol, b[0])
		}
	case fAuth:
		emit()
		f.expect(fInit, 1)
	case fInit:
		b[0] = 1 // shared
		emit()
		f.expect(fType, 1)
	case fType:
		t := b[0]
		f.pass = t == 0 || t == 2 || t == 3 || t == 150 || t == 248
		emit()
		switch t {
		case 0: // SetPixelFormat
			f.expect(fRest, 19)
		case 2: // SetEncodings: padding, count
			f.expect(fEncHdr, 3)
		case 3: // FramebufferUpdateRequest
			f.expect(fRest, 9)
		case 4: // KeyEvent
			f.expect(fRest, 7)
		case 5: // PointerEvent
			f.expect(fRest, 5)
		case 6: // ClientCutText: padding, length
			f.expect(fCutHdr, 7)
		case 150: // EnableContinuousUpdates
			f.expect(fRest, 9)
		case 248: // ClientFence: padding, flags, length
			f.expect(fFenceHdr, 8)
		case 251: // SetDesktopSize: padding, width, height, screens, padding
			f.expect(fSizeHdr, 7)
		case 255: // QEMU: a sub-type
			f.expect(fQEMU, 1)
		default:
			return out, fmt.Errorf("%w: message type %d", errViewOnlyProtocol, t)
		}
	case fRest:
		emit()
		f.expect(fType, 1)
	case fEncHdr:
		emit()
		f.expect(fPayload, 4*int(binary.BigEndian.Uint16(b[1:3])))
	case fCutHdr:
		emit()
		n := int64(int32(binary.BigEndian.Uint32(b[3:7])))
		if n < 0 { // the extended clipboard's negative length
			n = -n
		}
		f.expect(fPayload, int(n))
	case fFenceHdr:
		emit()
		f.expect(fPayload, int(b[7]))
	case fSizeHdr:
		emit()
		f.expect(fPayload, 16*int(b[5]))
	case fQEMU:
		switch b[0] {
		case 0: // extended key event
			f.expect(fRest, 10)
		case 1: // audio: an operation
			f.expect(fQEMUAudio, 2)
		default:
			return out, fmt.Errorf("%w: qemu message %d", errViewOnlyProtocol, b[0])
		}
	case fQEMUAudio:
		switch binary.BigEndian.Uint16(b) {
		case 0, 1: // enable, disable
			f.expect(fType, 1)
		case 2: // set format
			f.expect(fRest, 6)
		default:
			return out, fmt.Errorf("%w: qemu audio operation %d", errViewOnlyProtocol, binary.BigEndian.Uint16(b))
		}
	case fPayload:
		f.expect(fType, 1)
	}
	return out, nil
}
