package console

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/vmdhq/vmd/pkg/login"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
)

// Subprotocol is the WebSocket subprotocol of raw binary RFB (websockify's name).
const Subprotocol = "binary"

// ServeWS checks a console WebSocket request for vmID and, when everything
// holds, upgrades it and proxies until the session ends. authUserID is the
// user of the request's own bearer token or session cookie, "" when it has
// none; the token is the authority either way. An error is returned only
// before the upgrade, so the caller can write it as an API error; after the
// upgrade ServeWS returns nil.
//
// Everything is checked before the token is spent, so a refused request
// (wrong path, wrong user, a bad WebSocket handshake, a full VM) leaves it
// usable; it is taken in one atomic step just before the upgrade, so it
// still opens at most one connection.
func (c *Console) ServeWS(w http.ResponseWriter, r *http.Request, vmID, authUserID string) error {
	return c.serve(w, r, vmID, authUserID, c.consoleTarget(), nil)
}

// serve is the one path of every WebSocket session (console, port-forward):
// Origin, handshake, token (or a grant the caller vouches for, direct),
// user, authorization, VM state, caps, then the target's dial, the token's
// spending and the upgrade.
func (c *Console) serve(w http.ResponseWriter, r *http.Request, vmID, authUserID string, t *target, direct *Grant) error {
	// Origin first (nova's CVE-2015-0259 was a missing Origin check).
	if err := c.CheckOrigin(r); err != nil {
		return err
	}
	if err := checkHandshake(r); err != nil {
		return err
	}
	typ, err := targetType(r)
	if err != nil {
		return err
	}
	// Browsers always send Origin; a client that sends none is a program,
	// and a program must also say who it is (its bearer token).
	if r.Header.Get("Origin") == "" && authUserID == "" {
		return fmt.Errorf("%w: a client without an Origin header must send its bearer token", ErrWrongUser)
	}
	ctx := r.Context()
	var (
		hash string
		g    Grant
	)
	if direct != nil {
		g = *direct
	} else if hash, g, err = c.grant(ctx, r); err != nil {
		return err
	}
	if g.VMID != vmID || g.Kind != t.kind || (t.kind == KindPortForward && g.Port != t.port) {
		return ErrTokenInvalid
	}
	// A share link's token is the authority whoever the viewer is signed in as.
	if authUserID != "" && authUserID != g.UserID && g.LinkID == "" {
		return ErrWrongUser
	}
	v, err := c.allowed(ctx, g)
	if err != nil {
		return err
	}
	if err := c.linkAlive(ctx, g); err != nil {
		return err
	}
	if t.check != nil {
		if err := t.check(v); err != nil {
			return err
		}
	}
	sctx, scancel := context.WithCancelCause(context.Background())
	s := &session{userID: g.UserID, vmID: v.ID, cancel: scancel, serial: typ == TypeSerial, viewOnly: g.ViewOnly, linkID: g.LinkID, since: c.cfg.Now()}
	if err := t.sessions.reserve(s, t.maxVM, t.maxUser); err != nil {
		scancel(nil)
		return err
	}
	reserved := true
	forget := c.cfg.Sessions.Add(g.SessionID, g.UserID, func() { scancel(errLoginEnded) })
	defer func() {
		if reserved {
			forget()
			scancel(nil)
			t.sessions.release(s)
		}
	}()
	// Dialled before the upgrade, so the client is told why it failed.
	conn, err := t.dial(ctx, r, v, s)
	if err != nil {
		return err
	}
	// The one step that spends the token: of concurrent requests with it,
	// only one gets past here.
	if direct == nil {
		if _, err := c.cfg.Tokens.Take(ctx, hash); err != nil {
			conn.Close()
			if errors.Is(err, ErrTokenInvalid) {
				return err
			}
			return fmt.Errorf("take console token: %w", err)
		}
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{Subprotocol},
		// The Origin was checked above against the public URL, which behind
		// a reverse proxy need not be the Host this request came with.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		conn.Close()
		// Accept has written its own refusal.
		c.log.Info("console: websocket accept", "vm", v.ID, "kind", t.name, "err", err)
		return nil
	}
	reserved = false
	defer forget()
	c.active(ctx, v.ID)
	c.run(sctx, ws, conn, s, g, t)
	return nil
}

// CheckOrigin refuses a browser page of another origin than vmd's public
// URL. It is the console's one Origin rule: a node that forwards a console
// WebSocket to the VM's own node checks it with this before dropping it.
func (c *Console) CheckOrigin(r *http.Request) error {
	if o := r.Header.Get("Origin"); o != "" && strings.ToLower(o) != c.origin {
		return fmt.Errorf("%w: origin %q is not %s", ErrOrigin, o, c.origin)
	}
	return nil
}

// checkHandshake refuses everything websocket.Accept would (its
// verifyClientRequest), before the token is spent: not an upgrade, not
// HTTP/1.1, a WebSocket version other than 13, or a Sec-WebSocket-Key that
// is not exactly one 16-byte base64 value (RFC 6455 §4.2.1).
func checkHandshake(r *http.Request) error {
	if !headerHas(r.Header, "Connection", "upgrade") || !headerHas(r.Header, "Upgrade", "websocket") {
		return ErrNotWebSocket
	}
	if r.Method != http.MethodGet {
		return fmt.Errorf("%w: method %s", ErrNotWebSocket, r.Method)
	}
	if !r.ProtoAtLeast(1, 1) {
		return fmt.Errorf("%w: %s, want HTTP/1.1", ErrBadHandshake, r.Proto)
	}
	if v := r.Header.Get("Sec-WebSocket-Version"); v != "13" {
		return fmt.Errorf("%w: unsupported websocket version %q (want 13)", ErrBadHandshake, v)
	}
	switch keys := r.Header.Values("Sec-WebSocket-Key"); {
	case len(keys) == 0:
		return fmt.Errorf("%w: missing Sec-WebSocket-Key", ErrBadHandshake)
	case len(keys) > 1:
		return fmt.Errorf("%w: %d Sec-WebSocket-Key headers", ErrBadHandshake, len(keys))
	default:
		if k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0])); err != nil || len(k) != 16 {
			return fmt.Errorf("%w: Sec-WebSocket-Key is not 16 bytes of base64", ErrBadHandshake)
		}
	}
	return nil
}

// grant reads the request's token without spending it; an expired grant,
// or one whose login session ended, is invalid.
func (c *Console) grant(ctx context.Context, r *http.Request) (string, Grant, error) {
	tok := r.URL.Query().Get("token")
	if tok == "" {
		return "", Grant{}, ErrTokenInvalid
	}
	hash := hashToken(tok)
	g, err := c.cfg.Tokens.Get(ctx, hash)
	if err != nil {
		if errors.Is(err, ErrTokenInvalid) {
			return "", Grant{}, err
		}
		return "", Grant{}, fmt.Errorf("read console token: %w", err)
	}
	if !c.cfg.Now().Before(g.ExpiresAt) {
		return "", Grant{}, ErrTokenInvalid
	}
	if g.SessionID != "" {
		switch err := c.cfg.Sessions.Alive(ctx, g.SessionID); {
		case errors.Is(err, login.ErrEnded):
			return "", Grant{}, ErrSessionEnded
		case err != nil:
			return "", Grant{}, fmt.Errorf("console token's session: %w", err)
		}
	}
	return hash, g, nil
}

// TokenVM is the VM a console WebSocket request's token opens, checked as
// the console would (token, user, authorization) but without spending the
// token: a node that does not own the VM forwards the request there.
func (c *Console) TokenVM(ctx context.Context, r *http.Request) (store.VM, error) {
	_, g, err := c.grant(ctx, r)
	if err != nil {
		return store.VM{}, err
	}
	v, u, err := c.vmAndUser(ctx, g)
	if err != nil {
		return store.VM{}, err
	}
	if err := vm.Authorize(u, v); err != nil {
		return store.VM{}, fmt.Errorf("console of vm %s: %w", g.VMID, err)
	}
	return v, nil
}

// dialVNC connects to a VM's VNC socket. QEMU accepts one connection at a
// time behind a small backlog, so concurrent opens can be refused with
// EAGAIN: those are retried with backoff for up to DialWait.
func (c *Console) dialVNC(ctx context.Context, path string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialWait+5*time.Second)
	defer cancel()
	return dialRetry(ctx, c.cfg.DialWait, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	})
}

func dialRetry(ctx context.Context, wait time.Duration, dial func(context.Context) (net.Conn, error)) (net.Conn, error) {
	deadline := time.Now().Add(wait)
	backoff := 5 * time.Millisecond
	for {
		conn, err := dial(ctx)
		if err == nil || !errors.Is(err, syscall.EAGAIN) || time.Now().Add(backoff).After(deadline) {
			return conn, err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// allowed re-reads the token's user and VM: the user must still be allowed
// on the VM (vm.Authorize) and the VM must be running.
func (c *Console) allowed(ctx context.Context, g Grant) (store.VM, error) {
	v, u, err := c.vmAndUser(ctx, g)
	if err != nil {
		return store.VM{}, err
	}
	if err := vm.Authorize(u, v); err != nil {
		return store.VM{}, fmt.Errorf("console of vm %s: %w", g.VMID, err)
	}
	if !HasConsole(v.State) {
		return store.VM{}, fmt.Errorf("console of vm %s: %w (it is %s)", v.Name, ErrNotRunning, v.State)
	}
	return v, nil
}

func (c *Console) vmAndUser(ctx context.Context, g Grant) (store.VM, store.User, error) {
	v, err := c.cfg.Store.GetVM(ctx, g.VMID)
	if err != nil {
		return store.VM{}, store.User{}, fmt.Errorf("console of vm %s: %w", g.VMID, err)
	}
	u, err := c.cfg.Store.GetUser(ctx, g.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return store.VM{}, store.User{}, ErrTokenInvalid
	} else if err != nil {
		return store.VM{}, store.User{}, fmt.Errorf("console user %s: %w", g.UserID, err)
	}
	return v, u, nil
}

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// run proxies between ws and vnc until either side ends, the VM stops, the
// session idles out or the server shuts down.
func (c *Console) run(ctx context.Context, ws *websocket.Conn, vnc io.ReadWriteCloser, s *session, g Grant, t *target) {
	defer t.sessions.release(s)
	t.m.active.Inc()
	defer t.m.active.Dec()
	cancel := s.cancel
	// I/O has its own context: cancelling it makes coder/websocket drop the
	// connection at once, and the close frame with the reason goes first.
	ioCtx, ioCancel := context.WithCancel(context.Background())
	defer ioCancel()
	ws.SetReadLimit(16 << 20)

	var last atomic.Int64 // unix nanoseconds of the last byte either way
	// The client's pong is read by the client-to-VM loop, behind the data
	// the client sent before it: while that loop waits on a write to a
	// guest that reads slowly (a busy TCG guest taking a 100 MB upload),
	// no pong can arrive. So a ping goes unanswered without the client
	// being gone; fromClient and writingToVM tell the ping loop so.
	var fromClient atomic.Int64 // unix nanoseconds of the last byte read from the client
	var writingToVM atomic.Bool // the client-to-VM loop waits on a write to the VM
	var wroteToVM atomic.Int64  // unix nanoseconds the last write to the VM returned
	var halves atomic.Int32     // port-forward: sides closed (guest EOF, client's empty message)
	last.Store(time.Now().UnixNano())
	fw := &fbWatch{}
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { // pings: a peer that went away without a close (a laptop lid, a dead link) is noticed
		defer wg.Done()
		t := time.NewTicker(c.cfg.PingInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			sent := time.Now().UnixNano()
			pctx, pcancel := context.WithTimeout(ctx, c.cfg.PingInterval)
			err := ws.Ping(pctx)
			pcancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				// A write to the VM that ended after the ping counts too: on a
				// loaded machine this check can run just after one returned.
				if fromClient.Load() >= sent || writingToVM.Load() || wroteToVM.Load() >= sent {
					continue // the client is alive, or the wait is the guest's
				}
				cancel(errNoPong)
				return
			}
		}
	}()
	go func() { // VM to client
		defer wg.Done()
		buf := make([]byte, c.cfg.BufferSize)
		watching := t.kind == kindConsole && !s.serial // RFB's first update; a serial port has none
		for {
			n, err := vnc.Read(buf)
			if n > 0 {
				last.Store(time.Now().UnixNano())
				if watching && fw.feed(buf[:n]) {
					c.m.firstUpdt.Observe(c.cfg.Now().Sub(g.IssuedAt).Seconds())
				}
				watching = !fw.done
				if werr := ws.Write(ioCtx, websocket.MessageBinary, buf[:n]); werr != nil {
					cancel(werr)
					return
				}
				t.m.toClient.Add(float64(n))
			}
			if err != nil {
				if t.kind == KindPortForward && errors.Is(err, io.EOF) {
					// The guest closed its side: tell the client with an empty
					// message, and end once the client has closed its side too.
					if werr := ws.Write(ioCtx, websocket.MessageBinary, nil); werr != nil {
						cancel(werr)
					} else if halves.Add(1) == 2 {
						cancel(errGuestClosed)
					}
					return
				}
				cancel(fmt.Errorf("%w: %w", errVNCClosed, err))
				return
			}
		}
	}()
	go func() { // client to VM
		defer wg.Done()
		buf := make([]byte, c.cfg.BufferSize)
		// A view-only session's input is dropped here, not only by its page.
		var filter *inputFilter
		var passed []byte
		if g.ViewOnly {
			filter, passed = newInputFilter(), make([]byte, 0, c.cfg.BufferSize)
		}
		for {
			typ, rd, err := ws.Reader(ioCtx)
			if err != nil {
				cancel(err)
				return
			}
			if typ != websocket.MessageBinary {
				cancel(errTextFrame)
				return
			}
			empty := true
			for {
				n, err := rd.Read(buf)
				if n > 0 {
					empty = false
					now := time.Now().UnixNano()
					last.Store(now)
					fromClient.Store(now)
					if t.kind == kindConsole {
						fw.client(buf[:n])
					}
					out := buf[:n]
					if filter != nil {
						var ferr error
						if out, ferr = filter.filter(out, passed[:0]); ferr != nil {
							c.log.Info("console: view-only session", "vm", s.vmID, "err", ferr)
							cancel(errViewOnlyRFB)
							return
						}
					}
					if len(out) > 0 {
						writingToVM.Store(true)
						_, werr := vnc.Write(out)
						wroteToVM.Store(time.Now().UnixNano())
						writingToVM.Store(false)
						if werr != nil {
							cancel(fmt.Errorf("%w: %w", errVNCClosed, werr))
							return
						}
						t.m.toVM.Add(float64(len(out)))
					}
				}
				if err != nil {
					if errors.Is(err, io.EOF) {
						if empty && t.kind == KindPortForward {
							halfClose(vnc) // an empty message: the client sends no more
							if halves.Add(1) == 2 {
								cancel(errGuestClosed)
								return
							}
						}
						break
					}
					cancel(err)
					return
				}
			}
		}
	}()
	go func() { // watcher: idle timeout and the VM's state, as a backstop to CloseVM
		defer wg.Done()
		idle := t.idle
		tick := min(c.cfg.StatePoll, idle/4)
		t := time.NewTicker(tick)
		defer t.Stop()
		nextPoll := time.Now().Add(c.cfg.StatePoll)
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				if now.Sub(time.Unix(0, last.Load())) >= idle {
					cancel(errIdle)
					return
				}
				if now.Before(nextPoll) {
					continue
				}
				nextPoll = now.Add(c.cfg.StatePoll)
				pctx, pcancel := context.WithTimeout(ctx, c.cfg.StatePoll)
				v, err := c.cfg.Store.GetVM(pctx, s.vmID)
				var linkErr error
				if err == nil && s.linkID != "" {
					// Revoked on another node, or expired: this node's CloseLink never ran.
					linkErr = c.linkAlive(pctx, Grant{VMID: s.vmID, LinkID: s.linkID})
				}
				pcancel()
				switch {
				case errors.Is(err, store.ErrNotFound), err == nil && !HasConsole(v.State):
					cancel(errVMStopped)
					return
				case errors.Is(linkErr, errLinkTimeout):
					cancel(errLinkExpired)
					return
				case errors.Is(linkErr, errLinkGone):
					cancel(errLinkRevoked)
					return
				case err != nil && ctx.Err() == nil:
					c.log.Warn("console: poll vm state", "vm", s.vmID, "err", err)
				case err == nil:
					c.active(ctx, s.vmID)
				}
			}
		}
	}()

	<-ctx.Done()
	cause := context.Cause(ctx)
	code, reason := closeCode(cause)
	// Close sends the close frame and waits briefly for the peer's; it
	// also closes the connection, which ends the client-to-VM loop.
	if errors.Is(cause, errNoPong) {
		_ = ws.CloseNow() // a peer that does not pong will not answer a close either
	} else {
		_ = ws.Close(code, reason)
	}
	vnc.Close()
	ioCancel()
	wg.Wait()
	why := reason
	if why == "" {
		why = cause.Error()
	}
	c.log.Info("console: session ended", "vm", s.vmID, "user", s.userID, "kind", t.name, "reason", why)
}

// active tells Config.Active that a session of the VM is open.
func (c *Console) active(ctx context.Context, vmID string) {
	if c.cfg.Active != nil {
		c.cfg.Active(ctx, vmID)
	}
}
