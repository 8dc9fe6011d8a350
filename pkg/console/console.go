// Package console gives a VM's graphical console to its owner: it issues
// short-lived single-use console tokens and proxies a WebSocket (binary
// frames of raw RFB, subprotocol "binary", as websockify and noVNC speak)
// to the VM's VNC unix socket. The socket path always comes from the VM's
// database record, never from the client; every check (token, Origin, owner,
// VM state, caps) happens before the WebSocket upgrade.
package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/login"
	"github.com/vmdhq/vmd/pkg/serial"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
)

// Errors of the console; the server maps them to API codes.
var (
	// ErrTokenInvalid: the console token is missing, unknown, used, expired
	// or for another VM.
	ErrTokenInvalid = errors.New("console token is invalid, used or expired: ask for a new one")
	// ErrOrigin: a browser page of another origin tried to open the WebSocket.
	ErrOrigin = errors.New("cross-origin console connection refused")
	// ErrWrongUser: the request's own credentials are not the token's user.
	ErrWrongUser = errors.New("console token belongs to another user")
	// ErrNotRunning: the VM is not running, so it has no console.
	ErrNotRunning = errors.New("vm is not running")
	// ErrTooManySessions: the per-VM or per-user cap of open consoles is reached.
	ErrTooManySessions = errors.New("too many open console sessions")
	// ErrUnavailable: the VM's VNC socket cannot be reached.
	ErrUnavailable = errors.New("vm console unavailable")
	// ErrNotWebSocket: the request is not a WebSocket upgrade.
	ErrNotWebSocket = errors.New("not a websocket upgrade request")
	// ErrBadHandshake: a WebSocket upgrade this server does not speak (version, key).
	ErrBadHandshake = errors.New("bad websocket handshake")
)

// ErrSessionEnded: the login session that asked for the token has ended
// (logout, password change, disabled user), which voids its tokens.
var ErrSessionEnded = fmt.Errorf("%w: the login session that asked for it has ended", ErrTokenInvalid)

// endReason is why an open session ends: the WebSocket close code and text
// the client is told, picked by type, never by an error's wording.
type endReason struct {
	code websocket.StatusCode
	text string
}

func (e *endReason) Error() string { return e.text }

// Close codes of vmd's own (4000-4999 is for applications, RFC 6455 7.4.2).
const (
	// StatusVMStopped: the VM is no longer running (stopped, powered off,
	// restarting). The page shows its state and offers Start rather than
	// reconnecting blindly.
	StatusVMStopped websocket.StatusCode = 4001
)

// Reasons a session ends, given as the cause of its context. The close
// codes are part of the contract (docs/API.md "Console close codes"): 1008
// and 4000-4999 mean "do not reconnect on your own", 1001 and 1012 mean
// "try again".
var (
	errVMStopped    = &endReason{StatusVMStopped, "vm stopped"}
	errIdle         = &endReason{websocket.StatusPolicyViolation, "idle timeout"}
	errShutdown     = &endReason{websocket.StatusServiceRestart, "server restarting"}
	errNoPong       = &endReason{websocket.StatusGoingAway, "no answer to ping"}
	errViewOnlyRFB  = &endReason{websocket.StatusPolicyViolation, "view-only console: input protocol not understood"}
	errLinkRevoked  = &endReason{websocket.StatusPolicyViolation, "share link revoked"}
	errLinkExpired  = &endReason{websocket.StatusPolicyViolation, "share link expired"}
	errTextFrame    = &endReason{websocket.StatusUnsupportedData, "binary frames only"}
	errVNCClosed    = &endReason{websocket.StatusGoingAway, "vm console closed"}
	errLoginEnded   = &endReason{websocket.StatusPolicyViolation, "session ended: log in again"}
	errClientClosed = &endReason{websocket.StatusNormalClosure, "client closed"}
	errGuestClosed  = &endReason{websocket.StatusNormalClosure, "guest closed the connection"}
)

// closeCode is the close frame of a session that ended for cause.
func closeCode(cause error) (websocket.StatusCode, string) {
	var r *endReason
	var ce websocket.CloseError
	switch {
	case errors.As(cause, &r):
		return r.code, r.text
	case errors.As(cause, &ce):
		return errClientClosed.code, errClientClosed.text
	}
	return websocket.StatusNormalClosure, ""
}

// Store is what the console reads of the database (store.Store has it).
type Store interface {
	GetVM(ctx context.Context, id string) (store.VM, error)
	GetUser(ctx context.Context, id string) (store.User, error)
}

// SocketLocator names a VM's VNC unix socket.
type SocketLocator interface {
	VNCSocket(v store.VM) string
}

// LayoutSockets locates sockets by the driver's vm.Layout.
type LayoutSockets struct{ Layout vm.Layout }

// VNCSocket implements SocketLocator.
func (l LayoutSockets) VNCSocket(v store.VM) string { return l.Layout.Socket(v.ID, vm.VNCSocket) }

// Defaults of Config.
const (
	DefaultTokenTTL    = 60 * time.Second
	DefaultMaxPerVM    = 4
	DefaultMaxPerUser  = 8
	DefaultIdleTimeout = 15 * time.Minute
	DefaultStatePoll   = 3 * time.Second
	// DefaultBufferSize was the fastest read size measured on loopback
	// (shared/notes/console-proxy-and-security.md).
	DefaultBufferSize = 256 << 10
	// DefaultPingInterval: a session pings its browser this often and
	// closes it when no pong comes back before the next ping, so a dead
	// peer is gone within twice this.
	DefaultPingInterval = 15 * time.Second
	// DefaultDialWait bounds the retries of a VNC dial refused with EAGAIN:
	// QEMU's VNC socket has a small backlog and accepts one at a time.
	DefaultDialWait = 2 * time.Second
)

// Config wires a Console. Zero durations and counts take the defaults.
type Config struct {
	// PublicURL is vmd's public base URL: console links are built on it and
	// a browser's Origin must equal its origin.
	PublicURL string
	Store     Store
	Sockets   SocketLocator
	// Tokens defaults to an in-process store.
	Tokens TokenStore
	// Links keeps share links; nil uses Store when it keeps them (a
	// store.Store does), else share links are refused.
	Links LinkStore
	// Sessions closes a login session's consoles when it ends and voids its
	// tokens; nil makes one over Store (when it reads sessions).
	Sessions *login.Registry
	// Registry gets the console_* metrics; nil registers nowhere.
	Registry prometheus.Registerer
	Log      *slog.Logger
	Now      func() time.Time

	TokenTTL    time.Duration // how long a token may wait before it opens a connection
	MaxPerVM    int
	MaxPerUser  int
	IdleTimeout time.Duration // no traffic either way for this long closes a session
	StatePoll   time.Duration // how often an open session re-reads its VM's state
	BufferSize  int           // read buffer of each direction
	DialWait    time.Duration // how long a refused (EAGAIN) VNC dial is retried
	// Active, if set, is told that a session of the VM is open: when it
	// opens and at every state poll while it lasts (vm.Service.Touch, so
	// an idle-stop VM in use is not stopped).
	Active func(ctx context.Context, vmID string)
	// PingInterval is how often a session pings its peer; a ping not
	// answered within it closes the session.
	PingInterval time.Duration

	// Guests dials a running guest's TCP port for port-forward; nil
	// answers port-forward with ErrNoForward.
	Guests GuestDialer
	// Caps and idle limit of port-forward streams (each ssh, each
	// forwarded connection is one).
	MaxForwardsPerVM   int
	MaxForwardsPerUser int
	ForwardIdleTimeout time.Duration
}

// HasConsole says whether a VM in state s has a console: a running one,
// and a paused one, whose screen shows the frozen guest.
func HasConsole(s api.State) bool { return s == api.StateRunning || s == api.StatePaused }

// Console issues console tokens and serves console WebSockets.
type Console struct {
	cfg      Config
	log      *slog.Logger
	base     string   // public URL without a trailing slash
	origin   string   // scheme://host of the public URL, lower-case
	wsBase   string   // ws(s)://host/prefix
	sessions sessions // console sessions
	fwd      sessions // port-forward streams, capped apart: one ssh or transfer each
	m        metrics

	serialOnce sync.Once
	serial     *serial.Hubs // shared serial connections, made on first use (serial.go)
	fm         metrics
}

// New checks cfg, fills its defaults and registers the metrics.
func New(cfg Config) (*Console, error) {
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("console: public url %q must be an absolute http(s) URL", cfg.PublicURL)
	}
	if cfg.Store == nil || cfg.Sockets == nil {
		return nil, errors.New("console: store and socket locator are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Tokens == nil {
		cfg.Tokens = NewMemoryTokens(cfg.Now)
	}
	setDefault(&cfg.TokenTTL, DefaultTokenTTL)
	setDefault(&cfg.IdleTimeout, DefaultIdleTimeout)
	setDefault(&cfg.StatePoll, DefaultStatePoll)
	setDefault(&cfg.MaxPerVM, DefaultMaxPerVM)
	setDefault(&cfg.MaxPerUser, DefaultMaxPerUser)
	setDefault(&cfg.BufferSize, DefaultBufferSize)
	setDefault(&cfg.DialWait, DefaultDialWait)
	setDefault(&cfg.PingInterval, DefaultPingInterval)
	setDefault(&cfg.MaxForwardsPerVM, DefaultMaxForwardsPerVM)
	setDefault(&cfg.MaxForwardsPerUser, DefaultMaxForwardsPerUser)
	setDefault(&cfg.ForwardIdleTimeout, DefaultForwardIdleTimeout)
	if cfg.Sessions == nil {
		ss, _ := cfg.Store.(login.Store)
		cfg.Sessions = login.New(login.Config{Store: ss, Now: cfg.Now, Log: cfg.Log})
	}
	if cfg.Links == nil {
		cfg.Links, _ = cfg.Store.(LinkStore)
		if cfg.Links == nil {
			cfg.Links = noLinks{}
		}
	}
	c := &Console{cfg: cfg, log: cfg.Log}
	path := strings.TrimRight(u.Path, "/")
	c.origin = strings.ToLower(u.Scheme + "://" + u.Host)
	c.base = u.Scheme + "://" + u.Host + path
	ws := "ws"
	if u.Scheme == "https" {
		ws = "wss"
	}
	c.wsBase = ws + "://" + u.Host + path
	c.sessions.init()
	c.fwd.init()
	c.m = newMetrics("console", "RFB")
	c.fm = newMetrics("portforward", "TCP")
	c.fm.firstUpdt = nil
	if cfg.Registry != nil {
		if err := c.m.register(cfg.Registry); err != nil {
			return nil, fmt.Errorf("console: register metrics: %w", err)
		}
		if err := c.fm.register(cfg.Registry); err != nil {
			return nil, fmt.Errorf("console: register metrics: %w", err)
		}
	}
	return c, nil
}

func setDefault[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// Issue makes a console token for caller on v, which the caller must
// already be allowed to act on (vm.Service.Lookup checks that). The token
// belongs to the login session sessionID: it is void once that session
// ends. "" binds it to no session (in-process callers: benches, tests).
func (c *Console) Issue(ctx context.Context, caller store.User, sessionID string, v store.VM) (api.ConsoleResponse, error) {
	return c.IssueWith(ctx, caller, sessionID, v, IssueOptions{})
}

// IssueOptions are the kinds of console token beyond the plain one.
type IssueOptions struct {
	ViewOnly bool   // the session's input is dropped by the proxy
	LinkID   string // made through this share link (always view-only)
}

// IssueWith is Issue for a view-only token, or one of a share link.
func (c *Console) IssueWith(ctx context.Context, caller store.User, sessionID string, v store.VM, o IssueOptions) (api.ConsoleResponse, error) {
	if err := vm.Authorize(caller, v); err != nil {
		return api.ConsoleResponse{}, fmt.Errorf("console: %w", err)
	}
	if !HasConsole(v.State) {
		return api.ConsoleResponse{}, fmt.Errorf("console of vm %s: %w (it is %s)", v.Name, ErrNotRunning, v.State)
	}
	tok, hash, err := newToken()
	if err != nil {
		return api.ConsoleResponse{}, fmt.Errorf("console token: %w", err)
	}
	now := c.cfg.Now()
	g := Grant{UserID: caller.ID, VMID: v.ID, SessionID: sessionID, IssuedAt: now, ExpiresAt: now.Add(c.cfg.TokenTTL),
		ViewOnly: o.ViewOnly || o.LinkID != "", LinkID: o.LinkID}
	if err := c.cfg.Tokens.Put(ctx, hash, g); err != nil {
		return api.ConsoleResponse{}, fmt.Errorf("store console token of vm %s: %w", v.ID, err)
	}
	id := url.PathEscape(v.ID)
	page := c.base + "/console/" + id
	if g.ViewOnly && g.LinkID == "" {
		page += "?view_only=true"
	}
	return api.ConsoleResponse{
		// The page reads the token from the fragment, which browsers send
		// neither to servers nor in Referer headers.
		URL:       page + "#token=" + tok,
		WSURL:     c.wsBase + api.BasePath + "/vms/" + id + "/console/ws?token=" + tok,
		ExpiresAt: g.ExpiresAt,
		ViewOnly:  g.ViewOnly,
	}, nil
}

// CloseVM ends every console session of a VM; the reconciler calls it when
// the VM stops or is deleted.
func (c *Console) CloseVM(vmID string) {
	for _, s := range append(c.sessions.ofVM(vmID), c.fwd.ofVM(vmID)...) {
		s.cancel(errVMStopped)
	}
}

// Close ends every session and waits for them, at shutdown: http.Server's
// Shutdown does not touch hijacked connections.
func (c *Console) Close() {
	for _, s := range append(c.sessions.all(), c.fwd.all()...) {
		s.cancel(errShutdown)
	}
	c.sessions.wg.Wait()
	c.fwd.wg.Wait()
}

// Sessions returns the number of open sessions of a VM.
func (c *Console) Sessions(vmID string) int { return len(c.sessions.ofVM(vmID)) }

// LoginSessions is the registry that ends consoles with their login
// session; the server shares it for its event streams.
func (c *Console) LoginSessions() *login.Registry { return c.cfg.Sessions }

type session struct {
	userID, vmID string
	cancel       context.CancelCauseFunc
	serial       bool // the VM's serial port, not its screen
	viewOnly     bool
	linkID       string
	since        time.Time
}

// Presence lists the open console sessions of a VM on this node, oldest
// first, for whoever may act on the VM (the caller checks that).
func (c *Console) Presence(ctx context.Context, vmID string) ([]api.ConsoleSession, error) {
	ss := c.sessions.ofVM(vmID)
	sort.Slice(ss, func(i, j int) bool { return ss[i].since.Before(ss[j].since) })
	out := make([]api.ConsoleSession, 0, len(ss))
	emails := map[string]string{}
	for _, s := range ss {
		email, ok := emails[s.userID]
		if !ok {
			u, err := c.cfg.Store.GetUser(ctx, s.userID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("console sessions of vm %s: %w", vmID, err)
			}
			email, emails[s.userID] = u.Email, u.Email
		}
		out = append(out, api.ConsoleSession{UserID: s.userID, Email: email, ViewOnly: s.viewOnly, Since: s.since, LinkID: s.linkID})
	}
	return out, nil
}

// CloseLink ends the sessions opened through a share link (it was revoked).
func (c *Console) CloseLink(vmID, linkID string) {
	for _, s := range c.sessions.ofVM(vmID) {
		if s.linkID == linkID {
			s.cancel(errLinkRevoked)
		}
	}
}

// sessions counts open sessions per VM and per user under one lock, so a
// cap check and the reservation are one step.
type sessions struct {
	mu     sync.Mutex
	byVM   map[string]map[*session]struct{}
	byUser map[string]int
	wg     sync.WaitGroup
}

func (ss *sessions) init() {
	ss.byVM = map[string]map[*session]struct{}{}
	ss.byUser = map[string]int{}
}

func (ss *sessions) reserve(s *session, maxVM, maxUser int) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if n := len(ss.byVM[s.vmID]); n >= maxVM {
		return fmt.Errorf("%w: vm already has %d (the limit)", ErrTooManySessions, n)
	}
	if n := ss.byUser[s.userID]; n >= maxUser {
		return fmt.Errorf("%w: you already have %d (the limit)", ErrTooManySessions, n)
	}
	if ss.byVM[s.vmID] == nil {
		ss.byVM[s.vmID] = map[*session]struct{}{}
	}
	ss.byVM[s.vmID][s] = struct{}{}
	ss.byUser[s.userID]++
	ss.wg.Add(1)
	return nil
}

func (ss *sessions) release(s *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byVM[s.vmID], s)
	if len(ss.byVM[s.vmID]) == 0 {
		delete(ss.byVM, s.vmID)
	}
	if ss.byUser[s.userID]--; ss.byUser[s.userID] <= 0 {
		delete(ss.byUser, s.userID)
	}
	ss.wg.Done()
}

func (ss *sessions) ofVM(vmID string) []*session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	out := make([]*session, 0, len(ss.byVM[vmID]))
	for s := range ss.byVM[vmID] {
		out = append(out, s)
	}
	return out
}

func (ss *sessions) all() []*session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var out []*session
	for _, m := range ss.byVM {
		for s := range m {
			out = append(out, s)
		}
	}
	return out
}

type metrics struct {
	active    prometheus.Gauge
	bytes     *prometheus.CounterVec
	toClient  prometheus.Counter
	toVM      prometheus.Counter
	firstUpdt prometheus.Histogram
}

// newMetrics makes the metrics of one kind of session: prefix "console"
// (RFB) or "portforward" (guest TCP streams).
func newMetrics(prefix, what string) metrics {
	m := metrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: prefix + "_active_sessions",
			Help: "Open " + prefix + " WebSocket sessions."}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: prefix + "_bytes_total",
			Help: what + " bytes proxied by " + prefix + " sessions, by direction (to_client, to_vm)."}, []string{"direction"}),
		firstUpdt: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "console_time_to_first_update_seconds",
			Help:    "Time from issuing a console token to the first RFB FramebufferUpdate the VM sends through it.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60}}),
	}
	m.toClient = m.bytes.WithLabelValues("to_client")
	m.toVM = m.bytes.WithLabelValues("to_vm")
	return m
}

func (m metrics) register(r prometheus.Registerer) error {
	cs := []prometheus.Collector{m.active, m.bytes}
	if m.firstUpdt != nil {
		cs = append(cs, m.firstUpdt)
	}
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
