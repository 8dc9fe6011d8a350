package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/guestnet"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
)

// Kinds of session a token opens (Grant.Kind).
const (
	kindConsole     = ""
	KindPortForward = "portforward"
)

// Defaults of the port-forward settings in Config.
const (
	DefaultMaxForwardsPerVM   = 32
	DefaultMaxForwardsPerUser = 64
	// An ssh session may sit idle for a while; its keep-alives are traffic.
	DefaultForwardIdleTimeout = time.Hour
)

// Errors of port-forward; the server maps them to API codes.
var (
	// ErrNoNetwork: the VM was created with network none.
	ErrNoNetwork = errors.New("vm has no network (created with network none)")
	// ErrNoForward: this server has no guest networks to forward into.
	ErrNoForward = errors.New("port-forward is not enabled on this server")
	// ErrPortClosed: nothing listens on the guest's port (it answered RST).
	ErrPortClosed = errors.New("nothing listens on that port in the guest")
	// ErrNoLease: the guest has not taken its network address yet (booting).
	ErrNoLease = errors.New("the guest has no network address yet; try again once it has booted")
	// ErrGuestUnreachable: the guest does not answer on its network, or its
	// network is not attached on this node right now.
	ErrGuestUnreachable = errors.New("the guest does not answer on its network")
)

// forwardError names a guest network's refusal by the console's own
// sentinels, so the server maps them without knowing the network package.
func forwardError(err error) error {
	switch {
	case errors.Is(err, guestnet.ErrPortClosed):
		return ErrPortClosed
	case errors.Is(err, guestnet.ErrNoLease):
		return ErrNoLease
	case errors.Is(err, guestnet.ErrInvalidPort):
		return CheckPort(0)
	}
	return ErrGuestUnreachable // unreachable, closed, not attached here, timed out
}

// GuestDialer opens a TCP connection to a running guest's port inside its
// network (qemu.Driver). Its errors pass through to the server's mapper.
type GuestDialer interface {
	DialGuest(ctx context.Context, vmID string, port int) (net.Conn, error)
}

// target is what a session connects the WebSocket to: the VM's console or
// one TCP port of the guest. Each kind has its own caps, idle limit and metrics.
type target struct {
	kind, name     string
	port           int
	sessions       *sessions
	maxVM, maxUser int
	idle           time.Duration
	m              metrics
	check          func(store.VM) error // beyond authorization and running; nil for none
	dial           func(context.Context, *http.Request, store.VM, *session) (io.ReadWriteCloser, error)
}

func (c *Console) consoleTarget() *target {
	return &target{kind: kindConsole, name: "console", sessions: &c.sessions, maxVM: c.cfg.MaxPerVM,
		maxUser: c.cfg.MaxPerUser, idle: c.cfg.IdleTimeout, m: c.m,
		dial: func(ctx context.Context, r *http.Request, v store.VM, s *session) (io.ReadWriteCloser, error) {
			conn, err := c.dialTarget(ctx, r, v, s) // the screen's VNC socket or the serial port
			if err != nil {
				c.log.Warn("console: dial vm socket", "vm", v.ID, "serial", s.serial, "err", err)
				return nil, fmt.Errorf("%w: vm %s", ErrUnavailable, v.Name)
			}
			return conn, nil
		}}
}

func (c *Console) forwardTarget(port int) *target {
	return &target{kind: KindPortForward, name: "portforward", port: port, sessions: &c.fwd,
		maxVM: c.cfg.MaxForwardsPerVM, maxUser: c.cfg.MaxForwardsPerUser, idle: c.cfg.ForwardIdleTimeout, m: c.fm,
		check: forwardable,
		dial: func(ctx context.Context, _ *http.Request, v store.VM, _ *session) (io.ReadWriteCloser, error) {
			dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			conn, err := c.cfg.Guests.DialGuest(dctx, v.ID, port)
			if err != nil {
				c.log.Info("port-forward: dial guest", "vm", v.ID, "port", port, "err", err)
				return nil, fmt.Errorf("port-forward to vm %s port %d: %w", v.Name, port, forwardError(err))
			}
			return conn, nil
		}}
}

// forwardable: only a guest with a network has ports to reach.
func forwardable(v store.VM) error {
	if v.Network != api.NetworkNAT {
		return fmt.Errorf("port-forward to vm %s: %w", v.Name, ErrNoNetwork)
	}
	return nil
}

// CheckPort is the one rule for a port-forward's port.
func CheckPort(port int) error {
	if port < 1 || port > 65535 {
		return &vm.ValidationError{Field: "port", Message: "must be between 1 and 65535"}
	}
	return nil
}

// IssuePortForward makes a one-time port-forward token for caller on v's
// port, for a client that authenticates with a cookie (a browser): its
// link carries the token. Like Issue, it is void once sessionID ends.
func (c *Console) IssuePortForward(ctx context.Context, caller store.User, sessionID string, v store.VM, port int) (api.PortForwardResponse, error) {
	if err := CheckPort(port); err != nil {
		return api.PortForwardResponse{}, err
	}
	if c.cfg.Guests == nil {
		return api.PortForwardResponse{}, ErrNoForward
	}
	if err := vm.Authorize(caller, v); err != nil {
		return api.PortForwardResponse{}, fmt.Errorf("port-forward: %w", err)
	}
	if err := forwardable(v); err != nil {
		return api.PortForwardResponse{}, err
	}
	if v.State != api.StateRunning {
		return api.PortForwardResponse{}, fmt.Errorf("port-forward to vm %s: %w (it is %s)", v.Name, ErrNotRunning, v.State)
	}
	tok, hash, err := newToken()
	if err != nil {
		return api.PortForwardResponse{}, fmt.Errorf("port-forward token: %w", err)
	}
	now := c.cfg.Now()
	g := Grant{UserID: caller.ID, VMID: v.ID, SessionID: sessionID, IssuedAt: now, ExpiresAt: now.Add(c.cfg.TokenTTL),
		Kind: KindPortForward, Port: port}
	if err := c.cfg.Tokens.Put(ctx, hash, g); err != nil {
		return api.PortForwardResponse{}, fmt.Errorf("store port-forward token of vm %s: %w", v.ID, err)
	}
	return api.PortForwardResponse{
		WSURL: c.wsBase + api.BasePath + "/vms/" + url.PathEscape(v.ID) + "/portforward?port=" +
			strconv.Itoa(port) + "&token=" + tok,
		Port: port, ExpiresAt: g.ExpiresAt}, nil
}

// ServePortForward checks a port-forward WebSocket request for vmID's port
// and, when everything holds, upgrades it and carries one TCP stream to the
// guest's port until either side ends. The authority is the request's
// one-time token, or, with none, bearer: the user and login session of
// its bearer token (never a cookie's, which a browser sends on its own). Every check
// is the console's (serve); the guest's port is dialled before the
// upgrade, so "nothing listens" is an HTTP error. An error is returned
// only before the upgrade.
//
// Frames are binary; an empty binary message says its sender will send
// no more (a TCP half-close), in both directions; the server closes the
// WebSocket normally once the guest has closed its side and all its data went.
func (c *Console) ServePortForward(w http.ResponseWriter, r *http.Request, vmID string, port int, authUserID string, bearer *Bearer) error {
	if err := CheckPort(port); err != nil {
		return err
	}
	if c.cfg.Guests == nil {
		return ErrNoForward
	}
	var direct *Grant
	if r.URL.Query().Get("token") == "" {
		if bearer == nil || bearer.UserID == "" {
			return ErrTokenInvalid
		}
		now := c.cfg.Now()
		direct = &Grant{UserID: bearer.UserID, VMID: vmID, SessionID: bearer.SessionID, IssuedAt: now,
			ExpiresAt: now.Add(c.cfg.TokenTTL), Kind: KindPortForward, Port: port}
	}
	return c.serve(w, r, vmID, authUserID, c.forwardTarget(port), direct)
}

// Bearer is a request's own bearer-token login: its user and session.
type Bearer struct{ UserID, SessionID string }

// halfClose ends the write side of a guest connection (gonet's TCPConn
// and net.TCPConn have CloseWrite), so the guest reads EOF.
func halfClose(conn io.ReadWriteCloser) {
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
