package console

import (
	"encoding/binary"
	"sync/atomic"
)

// fbWatch follows the VM-to-client RFB stream just far enough to see the
// first FramebufferUpdate message (RFC 6143 §7): version, security
// handshake (None and VNC authentication), ServerInit, then server
// messages, skipping colour maps, bells and cut text. Anything else (other
// security types, unknown messages) stops the watch without a figure.
// feed runs on the VM-to-client goroutine; client sees the client's bytes
// for the one it needs, the security type chosen.
type fbWatch struct {
	chosen atomic.Int32 // security type the client picked (3.7+), 0 until known

	cli  [13]byte
	ncli int

	st      int
	need    int
	discard bool
	acc     []byte
	minor   int
	done    bool
}

const (
	stVersion = iota
	stSecCount
	stSecList
	stSecPending // the server waits for the client's choice
	stSec33
	stChallenge
	stResult
	stServerInit
	stName
	stMsg
	stColours
	stCut
	stSkip
)

// client records the client's first 13 bytes: its version and, from 3.7
// on, the security type it chose.
func (w *fbWatch) client(p []byte) {
	if w.ncli >= len(w.cli) {
		return
	}
	n := copy(w.cli[w.ncli:], p)
	w.ncli += n
	if w.ncli == len(w.cli) {
		w.chosen.Store(int32(w.cli[12]))
	}
}

// feed consumes server bytes and reports true once, when the first
// FramebufferUpdate starts.
func (w *fbWatch) feed(p []byte) bool {
	if w.need == 0 && w.st == stVersion && !w.done {
		w.need = 12
	}
	for !w.done {
		if w.st == stSecPending {
			if len(p) == 0 {
				return false
			}
			w.afterSecurity(int(w.chosen.Load()))
			continue
		}
		if w.need > 0 {
			if len(p) == 0 {
				return false
			}
			k := min(w.need, len(p))
			if !w.discard {
				w.acc = append(w.acc, p[:k]...)
			}
			w.need -= k
			p = p[k:]
			if w.need > 0 {
				return false
			}
		}
		if w.step() {
			return true
		}
	}
	return false
}

func (w *fbWatch) expect(st, n int, discard bool) {
	w.st, w.need, w.discard, w.acc = st, n, discard, w.acc[:0]
}

func (w *fbWatch) stop() { w.done, w.acc = true, nil }

// afterSecurity goes on once the security type is known.
func (w *fbWatch) afterSecurity(t int) {
	switch {
	case t == 1 && w.minor >= 8:
		w.expect(stResult, 4, false)
	case t == 1:
		w.expect(stServerInit, 24, false)
	case t == 2:
		w.expect(stChallenge, 16, true)
	default:
		w.stop()
	}
}

// step handles a complete field; true means a FramebufferUpdate was found.
func (w *fbWatch) step() bool {
	b := w.acc
	switch w.st {
	case stVersion:
		// "RFB 003.008\n"
		if len(b) != 12 || string(b[:4]) != "RFB " {
			w.stop()
			return false
		}
		w.minor = int(b[8]-'0')*100 + int(b[9]-'0')*10 + int(b[10]-'0')
		if w.minor >= 7 {
			w.expect(stSecCount, 1, false)
		} else {
			w.expect(stSec33, 4, false)
		}
	case stSecCount:
		if b[0] == 0 {
			w.stop()
			return false
		}
		w.expect(stSecList, int(b[0]), true)
	case stSecList:
		w.expect(stSecPending, 0, false)
	case stSec33:
		w.afterSecurity(int(binary.BigEndian.Uint32(b))) // 3.3 sends no result for None
	case stChallenge:
		w.expect(stResult, 4, false)
	case stResult:
		if binary.BigEndian.Uint32(b) != 0 {
			w.stop()
			return false
		}
		w.expect(stServerInit, 24, false)
	case stServerInit:
		w.expect(stName, int(binary.BigEndian.Uint32(b[20:24])), true)
	case stName, stSkip:
		w.expect(stMsg, 1, false)
	case stMsg:
		switch b[0] {
		case 0:
			w.stop()
			return true
		case 1:
			w.expect(stColours, 5, false)
		case 2:
			w.expect(stMsg, 1, false)
		case 3:
			w.expect(stCut, 7, false)
		default:
			w.stop()
		}
	case stColours:
		w.expect(stSkip, 6*int(binary.BigEndian.Uint16(b[3:5])), true)
	case stCut:
		w.expect(stSkip, int(binary.BigEndian.Uint32(b[3:7])), true)
	}
	return false
}
