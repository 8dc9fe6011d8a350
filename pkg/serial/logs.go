// Package serial gives a VM's serial port to its owner: its log
// (serial.log, which QEMU appends everything to) read as a tail or
// followed, and the live port (serial.sock) shared by several watchers, one
// of whom types (Hub). Who may see a VM's port is not decided here: callers
// authorize first (vm.Service.Lookup, the console's token checks).
package serial

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
)

// Bounds of a log read.
const (
	// MaxTail is the most lines a tail may ask for.
	MaxTail = 10000
	// MaxTailBytes bounds how far back from the end a tail reads, whatever
	// its line count: a guest printing one endless line costs no more.
	MaxTailBytes = 1 << 20
	// DefaultFollowsPerUser caps the open follows of one user on a node.
	DefaultFollowsPerUser = 8
	// DefaultPoll is how often a follow looks for new output.
	DefaultPoll = 200 * time.Millisecond
)

// ErrTooManyFollows: the user already follows DefaultFollowsPerUser logs.
var ErrTooManyFollows = errors.New("too many logs followed at once")

// Logs reads serial logs. vmd runs as root and reads each guest's log,
// which is 0600 and owned by the guest's own uid.
type Logs struct {
	Layout            vm.Layout
	MaxFollowsPerUser int
	Poll              time.Duration

	mu      sync.Mutex
	follows map[string]int // by user id
}

// Path is where v's serial log is.
func (l *Logs) Path(v store.VM) string { return l.Layout.VMFile(v.OwnerID, v.ID, vm.SerialFile) }

// Tail returns the last n lines (n ≤ 0: all, within MaxTailBytes) of the
// log at path; a log not written yet is empty.
func (l *Logs) Tail(path string, n int) ([]byte, int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	} else if err != nil {
		return nil, 0, fmt.Errorf("open serial log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("stat serial log: %w", err)
	}
	end := st.Size()
	start := max(0, end-MaxTailBytes)
	buf := make([]byte, end-start)
	if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, fmt.Errorf("read serial log: %w", err)
	}
	if start > 0 { // a line cut by the byte bound is dropped
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	return lastLines(buf, n), end, nil
}

// lastLines is the last n lines of b (all of b when n ≤ 0); an unfinished
// last line counts as one.
func lastLines(b []byte, n int) []byte {
	if n <= 0 {
		return b
	}
	i := len(b)
	if i > 0 && b[i-1] == '\n' {
		i--
	}
	for ; n > 0; n-- {
		j := bytes.LastIndexByte(b[:i], '\n')
		if j < 0 {
			return b
		}
		i = j
	}
	return b[i+1:]
}

// Reserve counts one follow of userID against its cap; release gives it back.
func (l *Logs) Reserve(userID string) (release func(), err error) {
	if err := l.reserve(userID); err != nil {
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { l.release(userID) }) }, nil
}

// Follow writes what the log at path gains after offset to w, flushing
// after each write, until ctx ends, w fails or gone says the VM is gone
// (it is asked about once a second). The caller has Reserved it.
func (l *Logs) Follow(ctx context.Context, path string, offset int64, w io.Writer, flush func() error, gone func(context.Context) bool) error {
	poll := l.Poll
	if poll <= 0 {
		poll = DefaultPoll
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	lastCheck := time.Now()
	buf := make([]byte, 64<<10)
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		if f == nil {
			var err error
			if f, err = os.Open(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("open serial log: %w", err)
			}
			if f == nil || err != nil {
				f = nil
			} else if _, err := f.Seek(offset, io.SeekStart); err != nil {
				return fmt.Errorf("seek serial log: %w", err)
			}
		}
		for f != nil {
			n, err := f.Read(buf)
			if n > 0 {
				offset += int64(n)
				if _, werr := w.Write(buf[:n]); werr != nil {
					return nil // the client went
				}
				if ferr := flush(); ferr != nil {
					return nil
				}
			}
			if err != nil || n == 0 {
				break // EOF: wait for more
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			if now.Sub(lastCheck) >= time.Second {
				lastCheck = now
				if gone(ctx) {
					return nil
				}
			}
		}
	}
}

func (l *Logs) reserve(userID string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	limit := l.MaxFollowsPerUser
	if limit <= 0 {
		limit = DefaultFollowsPerUser
	}
	if l.follows == nil {
		l.follows = map[string]int{}
	}
	if l.follows[userID] >= limit {
		return fmt.Errorf("%w: you already follow %d (the limit)", ErrTooManyFollows, limit)
	}
	l.follows[userID]++
	return nil
}

func (l *Logs) release(userID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.follows[userID]--; l.follows[userID] <= 0 {
		delete(l.follows, userID)
	}
}
