// Package qga is a client of the QEMU guest agent protocol (QGA): JSON
// commands over the guest's virtio-serial port org.qemu.guest_agent.0, which
// QEMU exposes on the host as a listening unix socket (chardev socket,
// server=on). vmd connects to that socket; qemu-ga -m unix-listen offers the
// same protocol on a socket, which is how the tests run the real agent.
//
// The protocol has no framing beyond one JSON object per line and no way to
// tell a reply to a former client from one to us, so every connection starts
// with guest-sync-delimited: we send 0xFF (the agent's parser resets) and a
// random id, and discard everything until the agent's 0xFF and that id.
// QEMU keeps the host side of the socket open while the guest reboots, so a
// restarted agent looks like an agent that stopped answering: a command that
// times out closes the connection and the next call dials and syncs again.
package qga

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"reflect"
	"sync"
	"time"
)

// Defaults for Options' zero values.
const (
	DefaultSyncTimeout    = 5 * time.Second
	DefaultCommandTimeout = 30 * time.Second
	DefaultChunkSize      = 1 << 20
	DefaultMaxReply       = 64 << 20
	// DefaultMaxOutput is qemu-ga's own cap on a command's captured output
	// (GUEST_EXEC_MAX_OUTPUT), per stream.
	DefaultMaxOutput = 16 << 20
	// cleanupTimeout bounds the work done after a caller has gone: killing
	// a timed-out command, closing a file handle.
	cleanupTimeout = 5 * time.Second
)

// Options tune a Client; the zero value takes the defaults.
type Options struct {
	// SyncTimeout bounds the handshake of a new connection (less when the
	// caller's context ends sooner). No answer in time is ErrNoAgent.
	SyncTimeout time.Duration
	// CommandTimeout bounds one command when the caller's context allows
	// longer, so a context without a deadline cannot wait for ever.
	CommandTimeout time.Duration
	// ChunkSize is the bytes per guest-file-read/-write (qemu-ga allows 48 MiB).
	ChunkSize int
	// MaxReply is the longest reply line accepted; a longer one drops the
	// connection. Exec's captured output (2 × 16 MiB in base64) must fit.
	MaxReply int
}

func (o Options) withDefaults() Options {
	if o.SyncTimeout <= 0 {
		o.SyncTimeout = DefaultSyncTimeout
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = DefaultCommandTimeout
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.MaxReply <= 0 {
		o.MaxReply = DefaultMaxReply
	}
	return o
}

// Client talks to one guest's agent. It dials lazily, holds one connection,
// sends one command at a time and reconnects after a failure. It is safe for
// concurrent use; callers queue for the connection within their contexts.
type Client struct {
	path string
	opt  Options

	sem chan struct{} // one command at a time; a channel so waiting honours ctx
	cn  *conn         // guarded by sem; nil until dialled or after a failure

	life   context.Context // cancelled by Close: aborts calls and cleanups
	cancel context.CancelFunc
	bgMu   sync.Mutex     // orders background's Add before Close's Wait
	bg     sync.WaitGroup // cleanups that outlive their caller
	once   sync.Once
}

var _ Agent = (*Client)(nil)

// New returns a client for the agent behind the unix socket at path. It does
// not connect: the first call does (the guest may not have booted yet).
func New(path string, opt Options) *Client {
	life, cancel := context.WithCancel(context.Background())
	return &Client{
		path:   path,
		opt:    opt.withDefaults(),
		sem:    make(chan struct{}, 1),
		life:   life,
		cancel: cancel,
	}
}

// Path is the socket the client dials.
func (c *Client) Path() string { return c.path }

// Close aborts calls in flight, waits for pending cleanups and closes the
// connection. The guest and its agent are not affected.
func (c *Client) Close() error {
	c.once.Do(func() {
		c.bgMu.Lock()
		c.cancel()
		c.bgMu.Unlock()
		c.bg.Wait()
		c.sem <- struct{}{}
		if c.cn != nil {
			_ = c.cn.nc.Close()
			c.cn = nil
		}
		// sem stays taken: every later call sees life done first.
	})
	return nil
}

// acquire waits for the connection within ctx.
func (c *Client) acquire(ctx context.Context, cmd string) error {
	select {
	case <-c.life.Done():
		return ErrClosed
	default:
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%s: waiting for the agent's previous command: %w (%w)", cmd, ErrNoAgent, ctx.Err())
	case <-c.life.Done():
		return ErrClosed
	}
	if c.life.Err() != nil {
		<-c.sem
		return ErrClosed
	}
	return nil
}

func (c *Client) release() { <-c.sem }

// call runs one command and decodes its "return" into out (nil to ignore).
func (c *Client) call(ctx context.Context, cmd string, args, out any) error {
	if err := c.acquire(ctx, cmd); err != nil {
		return err
	}
	defer c.release()
	return c.callLocked(ctx, cmd, args, out)
}

func (c *Client) callLocked(ctx context.Context, cmd string, args, out any) error {
	ctx, cancel := c.bound(ctx, c.opt.CommandTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		fresh := c.cn == nil
		if fresh {
			if err := c.connect(ctx); err != nil {
				return fmt.Errorf("%s: %w", cmd, err)
			}
		}
		err := c.cn.roundTrip(ctx, cmd, args, out)
		var qe *Error
		if err == nil || errors.As(err, &qe) {
			return err
		}
		c.drop()
		// A kept connection whose peer went away (agent restarted between
		// calls) fails on write: the command never left, so one retry on a
		// fresh connection is safe even for guest-exec or a file write.
		var we writeError
		if !fresh && attempt == 0 && errors.As(err, &we) && ctx.Err() == nil {
			continue
		}
		return c.explain(ctx, cmd, err)
	}
}

// bound gives ctx a deadline no later than d from now, and ends it on Close.
func (c *Client) bound(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	var cancel context.CancelFunc
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > d {
		ctx, cancel = context.WithTimeout(ctx, d)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	stop := context.AfterFunc(c.life, cancel)
	return ctx, func() { stop(); cancel() }
}

// explain turns a transport failure into ErrNoAgent with its cause.
func (c *Client) explain(ctx context.Context, cmd string, err error) error {
	if c.life.Err() != nil {
		return ErrClosed
	}
	var big errReplyTooLarge
	if errors.As(err, &big) {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if cerr := ended(ctx, err); cerr != nil {
		return fmt.Errorf("%s: %w (%w)", cmd, ErrNoAgent, cerr)
	}
	return fmt.Errorf("%s: %w: %w", cmd, ErrNoAgent, err)
}

// ended is the context's error when ctx caused err. The connection's
// deadline is the context's, but its timer can fire a moment earlier.
func ended(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *Client) drop() {
	if c.cn != nil {
		_ = c.cn.nc.Close()
		c.cn = nil
	}
}

// connect dials and syncs within ctx and SyncTimeout.
func (c *Client) connect(ctx context.Context) error {
	ctx, cancel := c.bound(ctx, c.opt.SyncTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		if c.life.Err() != nil {
			return ErrClosed
		}
		return fmt.Errorf("%w: %w", ErrNoAgent, err)
	}
	cn := &conn{nc: nc, r: bufio.NewReaderSize(nc, 256<<10), max: c.opt.MaxReply}
	if err := cn.sync(ctx); err != nil {
		_ = nc.Close()
		if c.life.Err() != nil {
			return ErrClosed
		}
		if cerr := ended(ctx, err); cerr != nil {
			return fmt.Errorf("sync: %w (%w)", ErrNoAgent, cerr)
		}
		return fmt.Errorf("sync: %w: %w", ErrNoAgent, err)
	}
	c.cn = cn
	return nil
}

// background runs a cleanup that must happen although its caller has gone
// (its context ended): it queues for the connection like any call, is
// bounded by cleanupTimeout, and Close waits for it.
func (c *Client) background(f func(ctx context.Context)) {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	if c.life.Err() != nil {
		return
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		ctx, cancel := context.WithTimeout(c.life, cleanupTimeout)
		defer cancel()
		f(ctx)
	}()
}

// conn is one connection after a successful sync.
type conn struct {
	nc   net.Conn
	r    *bufio.Reader
	id   uint64
	max  int
	line []byte // readLine's buffer for lines longer than r's
}

type request struct {
	Execute   string `json:"execute"`
	Arguments any    `json:"arguments,omitempty"`
	ID        uint64 `json:"id,omitempty"`
}

// writeError marks a failure to send, before the agent could act.
type writeError struct{ err error }

func (e writeError) Error() string { return "send: " + e.err.Error() }
func (e writeError) Unwrap() error { return e.err }

type errReplyTooLarge int

func (e errReplyTooLarge) Error() string {
	return fmt.Sprintf("agent reply longer than %d bytes", int(e))
}

// deadline makes the connection's I/O end with ctx: at its deadline, or at
// once when it is cancelled. The returned func undoes the cancel hook.
func (cn *conn) deadline(ctx context.Context) func() bool {
	dl, _ := ctx.Deadline()
	_ = cn.nc.SetDeadline(dl)
	return context.AfterFunc(ctx, func() { _ = cn.nc.SetDeadline(time.Unix(1, 0)) })
}

// sync does the guest-sync-delimited handshake.
func (cn *conn) sync(ctx context.Context) error {
	defer cn.deadline(ctx)()
	id := rand.Int64N(1 << 53) // exact in the agent's and anyone's JSON numbers
	b, err := json.Marshal(request{Execute: "guest-sync-delimited", Arguments: map[string]int64{"id": id}})
	if err != nil {
		return err
	}
	// 0xFF is never valid in JSON text: the agent resets its parser on it
	// (and answers it with a parse error, discarded below with everything
	// else that precedes its own 0xFF).
	if _, err := cn.nc.Write(append([]byte{0xFF}, append(b, '\n')...)); err != nil {
		return writeError{err}
	}
	for {
		line, err := cn.readLine()
		if err != nil {
			return err
		}
		i := bytes.LastIndexByte(line, 0xFF)
		if i < 0 {
			continue // stale output of an earlier client
		}
		var r struct {
			Return *int64 `json:"return"`
		}
		if json.Unmarshal(line[i+1:], &r) == nil && r.Return != nil && *r.Return == id {
			return nil
		}
	}
}

// readLine returns the next reply line, at most cn.max bytes. The line is
// valid until the next read: callers decode it at once.
func (cn *conn) readLine() ([]byte, error) {
	var buf []byte
	for {
		frag, err := cn.r.ReadSlice('\n')
		if len(buf)+len(frag) > cn.max {
			return nil, errReplyTooLarge(cn.max)
		}
		if err == nil && buf == nil {
			return frag, nil
		}
		if buf == nil {
			buf = cn.line[:0] // reused: file chunks come one after another
		}
		buf = append(buf, frag...)
		if err == nil {
			if cap(buf) <= 4*DefaultChunkSize {
				cn.line = buf
			}
			return buf, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

type reply struct {
	ID    json.RawMessage `json:"id"`
	Error *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Return any `json:"return"` // the caller's out, decoded in the same pass
}

// roundTrip sends one command and decodes the reply that carries its id.
func (cn *conn) roundTrip(ctx context.Context, cmd string, args, out any) error {
	defer cn.deadline(ctx)()
	cn.id++
	b, err := json.Marshal(request{Execute: cmd, Arguments: args, ID: cn.id})
	if err != nil {
		return fmt.Errorf("%s: encode: %w", cmd, err)
	}
	if _, err := cn.nc.Write(append(b, '\n')); err != nil {
		return writeError{err}
	}
	want := []byte(fmt.Sprint(cn.id))
	for {
		line, err := cn.readLine()
		if err != nil {
			return err
		}
		var lifted map[string][]byte
		if l, ok := out.(lifter); ok {
			line, lifted = liftStrings(line, l.liftKeys())
		}
		// One pass decodes the id and the result.
		r := reply{Return: out}
		err = json.Unmarshal(line, &r)
		// qemu-ga echoes the id; a reply with another one answers a
		// command of an earlier caller that gave up (its result may not
		// even fit out). Old agents echo none.
		if r.ID != nil && !bytes.Equal(r.ID, want) {
			if out != nil {
				reflect.ValueOf(out).Elem().SetZero() // undo the stale decode
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("bad reply: %w", err)
		}
		if r.Error != nil {
			return &Error{Command: cmd, Class: r.Error.Class, Desc: r.Error.Desc}
		}
		for k, v := range lifted {
			if err := out.(lifter).lift(k, v); err != nil {
				return fmt.Errorf("bad reply: %s: %w", k, err)
			}
		}
		return nil
	}
}

// lifter is a result with long base64 strings (file chunks, captured
// output). roundTrip takes them out of the reply before encoding/json sees
// it and hands them over raw: a chunk is megabytes of base64, which
// encoding/json would scan three times over, byte by byte.
type lifter interface {
	liftKeys() []string
	lift(key string, b64 []byte) error
}

// liftStrings cuts the values of keys out of a reply line, leaving "" in
// their place, when they appear as qemu-ga writes them ("key": "…") without
// escapes; anything else stays in the line for encoding/json. A quote
// inside a JSON string is escaped, so the pattern matches only a real key.
// The lifted values point into line.
func liftStrings(line []byte, keys []string) ([]byte, map[string][]byte) {
	var out map[string][]byte
	for _, k := range keys {
		pat := `"` + k + `": "`
		i := bytes.Index(line, []byte(pat))
		if i < 0 {
			continue
		}
		start := i + len(pat)
		n := bytes.IndexByte(line[start:], '"')
		if n < 0 {
			continue
		}
		v := line[start : start+n]
		if bytes.IndexByte(v, '\\') >= 0 {
			continue
		}
		if out == nil {
			out = make(map[string][]byte, len(keys))
		}
		out[k] = v
		rest := make([]byte, 0, len(line)-n)
		line = append(append(rest, line[:start]...), line[start+n:]...)
	}
	return line, out
}

// decodeBase64 decodes a lifted value.
func decodeBase64(b64 []byte) ([]byte, error) {
	b := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
	n, err := base64.StdEncoding.Decode(b, b64)
	return b[:n], err
}
