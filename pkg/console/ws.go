package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
)

// Subprotocol is the WebSocket subprotocol of raw binary RFB (websockify's name).
const Subprotocol = "binary"

// ServeWS checks a console WebSocket request for vmID and, when everything
// holds, upgrades it and proxies until the session ends. authUserID is the
// user of the request's own bearer token or session cookie, "" when it has
// none; the token is the authority either way. An error is returned only
// before the upgrade, so the caller can write it as an API error; after the
// upgrade ServeWS returns nil.
func (c *Console) ServeWS(w http.ResponseWriter, r *http.Request, vmID, authUserID string) error {
	// Origin first, so a hostile page cannot even burn a token
	// (nova's CVE-2015-0259 was a missing Origin check).
	if o := r.Header.Get("Origin"); o != "" && strings.ToLower(o) != c.origin {
		return fmt.Errorf("%w: origin %q is not %s", ErrOrigin, o, c.origin)
	}
	if !headerHas(r.Header, "Connection", "upgrade") || !headerHas(r.Header, "Upgrade", "websocket") {
		return ErrNotWebSocket
	}
	// Checked here, not left to Accept, so the refusal is the API's JSON.
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		return ErrWSVersion
	}
	// Browsers always send Origin; a client that sends none is a program,
	// and a program must also say who it is (its bearer token).
	if r.Header.Get("Origin") == "" && authUserID == "" {
		return fmt.Errorf("%w: a client without an Origin header must send its bearer token", ErrWrongUser)
	}
	tok := r.URL.Query().Get("token")
	if tok == "" {
		return ErrTokenInvalid
	}
	ctx := r.Context()
	// Taken before any other check: a token that was presented is spent.
	g, err := c.cfg.Tokens.Take(ctx, hashToken(tok))
	if err != nil {
		if errors.Is(err, ErrTokenInvalid) {
			return err
		}
		return fmt.Errorf("take console token: %w", err)
	}
	if !c.cfg.Now().Before(g.ExpiresAt) || g.VMID != vmID {
		return ErrTokenInvalid
	}
	if authUserID != "" && authUserID != g.UserID {
		return ErrWrongUser
	}
	v, err := c.allowed(ctx, g)
	if err != nil {
		return err
	}
	sctx, scancel := context.WithCancelCause(context.Background())
	s := &session{userID: g.UserID, vmID: v.ID, cancel: scancel}
	if err := c.sessions.reserve(s, c.cfg.MaxPerVM, c.cfg.MaxPerUser); err != nil {
		scancel(nil)
		return err
	}
	reserved := true
	defer func() {
		if reserved {
			scancel(nil)
			c.sessions.release(s)
		}
	}()
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	vnc, err := d.DialContext(dctx, "unix", c.cfg.Sockets.VNCSocket(v))
	cancel()
	if err != nil {
		c.log.Warn("console: dial vnc socket", "vm", v.ID, "err", err)
		return fmt.Errorf("%w: vm %s", ErrUnavailable, v.Name)
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{Subprotocol},
		// The Origin was checked above against the public URL, which behind
		// a reverse proxy need not be the Host this request came with.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		vnc.Close()
		// Accept has written its own refusal.
		c.log.Info("console: websocket accept", "vm", v.ID, "err", err)
		return nil
	}
	reserved = false
	c.run(sctx, ws, vnc, s, g)
	return nil
}

// allowed re-reads the token's user and VM: the user must still own the VM
// (or be an admin) and the VM must be running.
func (c *Console) allowed(ctx context.Context, g Grant) (store.VM, error) {
	v, err := c.cfg.Store.GetVM(ctx, g.VMID)
	if err != nil {
		return store.VM{}, fmt.Errorf("console of vm %s: %w", g.VMID, err)
	}
	u, err := c.cfg.Store.GetUser(ctx, g.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return store.VM{}, ErrTokenInvalid
	} else if err != nil {
		return store.VM{}, fmt.Errorf("console user %s: %w", g.UserID, err)
	}
	if v.OwnerID != u.ID && !u.Admin {
		return store.VM{}, fmt.Errorf("console of vm %s: %w", g.VMID, store.ErrNotFound)
	}
	if v.State != api.StateRunning {
		return store.VM{}, fmt.Errorf("console of vm %s: %w (it is %s)", v.Name, ErrNotRunning, v.State)
	}
	return v, nil
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
func (c *Console) run(ctx context.Context, ws *websocket.Conn, vnc net.Conn, s *session, g Grant) {
	defer c.sessions.release(s)
	c.m.active.Inc()
	defer c.m.active.Dec()
	cancel := s.cancel
	// I/O has its own context: cancelling it makes coder/websocket drop the
	// connection at once, and the close frame with the reason goes first.
	ioCtx, ioCancel := context.WithCancel(context.Background())
	defer ioCancel()
	ws.SetReadLimit(16 << 20)

	var last atomic.Int64 // unix nanoseconds of the last byte either way
	last.Store(time.Now().UnixNano())
	fw := &fbWatch{}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // VM to client
		defer wg.Done()
		buf := make([]byte, c.cfg.BufferSize)
		watching := true
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
				c.m.toClient.Add(float64(n))
			}
			if err != nil {
				cancel(fmt.Errorf("vnc socket: %w", err))
				return
			}
		}
	}()
	go func() { // client to VM
		defer wg.Done()
		buf := make([]byte, c.cfg.BufferSize)
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
			for {
				n, err := rd.Read(buf)
				if n > 0 {
					last.Store(time.Now().UnixNano())
					fw.client(buf[:n])
					if _, werr := vnc.Write(buf[:n]); werr != nil {
						cancel(fmt.Errorf("vnc socket: %w", werr))
						return
					}
					c.m.toVM.Add(float64(n))
				}
				if err != nil {
					if errors.Is(err, io.EOF) {
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
		tick := min(c.cfg.StatePoll, c.cfg.IdleTimeout/4)
		t := time.NewTicker(tick)
		defer t.Stop()
		nextPoll := time.Now().Add(c.cfg.StatePoll)
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				if now.Sub(time.Unix(0, last.Load())) >= c.cfg.IdleTimeout {
					cancel(errIdle)
					return
				}
				if now.Before(nextPoll) {
					continue
				}
				nextPoll = now.Add(c.cfg.StatePoll)
				pctx, pcancel := context.WithTimeout(ctx, c.cfg.StatePoll)
				v, err := c.cfg.Store.GetVM(pctx, s.vmID)
				pcancel()
				switch {
				case errors.Is(err, store.ErrNotFound), err == nil && v.State != api.StateRunning:
					cancel(errVMStopped)
					return
				case err != nil && ctx.Err() == nil:
					c.log.Warn("console: poll vm state", "vm", s.vmID, "err", err)
				}
			}
		}
	}()

	<-ctx.Done()
	cause := context.Cause(ctx)
	code, reason := closeCode(cause)
	// Close sends the close frame and waits briefly for the peer's; it
	// also closes the connection, which ends the client-to-VM loop.
	_ = ws.Close(code, reason)
	vnc.Close()
	ioCancel()
	wg.Wait()
	why := reason
	if why == "" {
		why = cause.Error()
	}
	c.log.Info("console: session ended", "vm", s.vmID, "user", s.userID, "reason", why)
}

var errTextFrame = errors.New("text frame")

func closeCode(cause error) (websocket.StatusCode, string) {
	var ce websocket.CloseError
	switch {
	case errors.Is(cause, errVMStopped):
		return websocket.StatusGoingAway, "vm stopped"
	case errors.Is(cause, errIdle):
		return websocket.StatusPolicyViolation, "idle timeout"
	case errors.Is(cause, errShutdown):
		return websocket.StatusGoingAway, "server shutting down"
	case errors.Is(cause, errTextFrame):
		return websocket.StatusUnsupportedData, "binary frames only"
	case errors.As(cause, &ce):
		return websocket.StatusNormalClosure, "client closed"
	case strings.HasPrefix(cause.Error(), "vnc socket"):
		return websocket.StatusGoingAway, "vm console closed"
	}
	return websocket.StatusNormalClosure, ""
}
