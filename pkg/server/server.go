// Package server is vmd's HTTP side: the /api/v1 handlers, authentication
// and CSRF middleware, request logs, health and metrics. Handlers bind and
// check input, call a service (account, vm) and return pkg/api types.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vmdhq/vmd/pkg/account"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/console"
	"github.com/vmdhq/vmd/pkg/login"
	"github.com/vmdhq/vmd/pkg/ratelimit"
	"github.com/vmdhq/vmd/pkg/serial"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
)

// Config wires a Server.
type Config struct {
	Accounts  *account.Service
	VMs       *vm.Service
	Store     store.Store // for /readyz
	PublicURL string
	Log       *slog.Logger
	Registry  *prometheus.Registry
	// Ready adds facts to /readyz (the accelerator chosen, say).
	Ready func(ctx context.Context) map[string]string
	// Checks are the backing services besides the store that /readyz
	// reports by name ("redis": its Ping); any failing makes it 503.
	Checks map[string]func(ctx context.Context) error
	// TrustedProxies are the networks whose X-Forwarded-For is believed (nginx in front).
	TrustedProxies []*net.IPNet
	Version        string
	// Console serves VM consoles; nil answers its routes with 503.
	Console *console.Console
	// Cluster, if set, places new VMs and proxies to the node owning a VM.
	Cluster Cluster
	// Sessions ends what a login session opened (consoles, event streams)
	// when it ends; nil takes the console's, else one over Store.
	Sessions *login.Registry
	// Feed is the change feed of GET /events; nil makes one over Store
	// with EventStreamsPerUser as its cap.
	Feed                *vm.Feed
	EventStreamsPerUser int
	// Logs serves VMs' serial logs; nil answers GET /vms/{id}/logs with 503.
	Logs *serial.Logs
	// Screenshots counts screenshots per user; nil keeps the count in this
	// process. ScreenshotsPerMinute defaults to DefaultScreenshotsPerMinute.
	Screenshots          ratelimit.Limiter
	ScreenshotsPerMinute int
}

// Server is the HTTP handler of vmd.
type Server struct {
	closing   chan struct{} // closed by CloseStreams
	closeOnce sync.Once
	cfg       Config
	log       *slog.Logger
	echo      *echo.Echo
	secure    bool // public URL is https: cookies get Secure
	origin    string
	sessions  *login.Registry
	feed      *vm.Feed
	reqs      *prometheus.CounterVec
	dur       *prometheus.HistogramVec
	shots     ratelimit.Limiter
	shotLimit int
}

// access is what a route needs of its caller.
type access int

const (
	public access = iota
	user
	admin
)

type route struct {
	method string
	path   string
	access access
	h      echo.HandlerFunc
}

// New builds the server and its routes.
func New(cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || u.Host == "" {
		return nil, &api.StatusError{Message: "server: --public-url must be an absolute URL such as https://vmd.example.com"}
	}
	s := &Server{closing: make(chan struct{}), cfg: cfg, log: cfg.Log, secure: u.Scheme == "https", origin: u.Scheme + "://" + u.Host}
	switch {
	case cfg.Sessions != nil:
		s.sessions = cfg.Sessions
	case cfg.Console != nil:
		s.sessions = cfg.Console.LoginSessions()
	case cfg.Store != nil:
		s.sessions = login.New(login.Config{Store: cfg.Store, Log: cfg.Log})
	default:
		s.sessions = login.New(login.Config{Log: cfg.Log})
	}
	s.feed = cfg.Feed
	s.shots, s.shotLimit = cfg.Screenshots, cfg.ScreenshotsPerMinute
	if s.shots == nil {
		s.shots = ratelimit.NewMemory()
	}
	if s.shotLimit <= 0 {
		s.shotLimit = DefaultScreenshotsPerMinute
	}
	if s.feed == nil && cfg.Store != nil {
		s.feed = vm.NewFeed(vm.FeedConfig{Store: cfg.Store, MaxPerUser: cfg.EventStreamsPerUser, Log: cfg.Log})
	}
	s.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "api_requests_total",
		Help: "HTTP requests by route, method and status code."}, []string{"route", "method", "code"})
	s.dur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "api_request_duration_seconds",
		Help: "HTTP request latency by route and method.", Buckets: prometheus.DefBuckets}, []string{"route", "method"})
	if err := registerAll(cfg.Registry, s.reqs, s.dur); err != nil {
		return nil, err
	}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	// Client IPs (login throttling, logs) come from the connection, or from
	// X-Forwarded-For only when the connection is one of the trusted proxies.
	e.IPExtractor = echo.ExtractIPDirect()
	if len(cfg.TrustedProxies) > 0 {
		opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, n := range cfg.TrustedProxies {
			opts = append(opts, echo.TrustIPRange(n))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(opts...)
	}
	e.Use(s.requestID, s.accessLog, middleware.Recover(), middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{Limit: "1M",
		// Uploads stream to the guest and have their own limit (putFile).
		Skipper: func(c echo.Context) bool {
			return c.Request().Method == http.MethodPut && strings.HasSuffix(c.Path(), "/files")
		}}), s.securityHeaders)
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry})))
	if err := s.registerWeb(e); err != nil {
		return nil, err
	}

	g := e.Group(api.BasePath)
	for _, r := range s.routes() {
		mw := []echo.MiddlewareFunc{}
		switch r.access {
		case user:
			mw = append(mw, s.authenticate)
		case admin:
			mw = append(mw, s.authenticate, requireAdmin)
		}
		g.Add(r.method, r.path, r.h, mw...)
	}
	s.echo = e
	return s, nil
}

func registerAll(r prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// routes is the API route table: each route with the access it requires.
func (s *Server) routes() []route {
	return []route{
		{http.MethodPost, "/auth/signup", public, s.signup},
		{http.MethodPost, "/auth/verify", public, s.verify},
		{http.MethodGet, "/auth/verify", public, s.verify},
		{http.MethodPost, "/auth/login", public, s.login},
		{http.MethodPost, "/auth/logout", user, s.logout},
		{http.MethodPost, "/auth/password", user, s.changePassword},
		{http.MethodPost, "/auth/verify/resend", public, s.resendVerification},
		{http.MethodPost, "/auth/password/forgot", public, s.forgotPassword},
		{http.MethodPost, "/auth/password/reset", public, s.resetPassword},
		{http.MethodGet, "/me", user, s.me},
		{http.MethodDelete, "/me", user, s.deleteMe},
		{http.MethodGet, "/me/vms", user, s.listVMs},
		{http.MethodGet, "/vms", user, s.listVMs},
		{http.MethodPost, "/vms", user, s.placed(s.createVM)},
		{http.MethodGet, "/vms/:id", user, s.getVM},
		{http.MethodPost, "/vms/:id/start", user, s.startVM},
		{http.MethodPost, "/vms/:id/stop", user, s.stopVM},
		{http.MethodDelete, "/vms/:id", user, s.deleteVM},
		{http.MethodGet, "/vms/:id/console", user, s.onOwner(s.consoleToken)},
		{http.MethodGet, "/vms/:id/console/ws", public, s.wsOnOwner(s.consoleWS)}, // the console token is the authority
		{http.MethodGet, "/events", user, s.events},
		{http.MethodGet, "/templates", user, s.templates},
		{http.MethodGet, "/users", admin, s.listUsers},
		{http.MethodPut, "/users/:id/quota", admin, s.setQuota},
		{http.MethodPost, "/users/:id/disable", admin, s.setDisabled(true)},
		{http.MethodPost, "/users/:id/enable", admin, s.setDisabled(false)},
		{http.MethodGet, "/version", public, s.version},
		{http.MethodGet, "/openapi.json", public, s.openapi},
		{http.MethodPost, "/vms/:id/pause", user, s.pauseVM},
		{http.MethodPost, "/vms/:id/resume", user, s.resumeVM},
		{http.MethodPost, "/vms/:id/extend", user, s.extendVM},
		{http.MethodPost, "/vms/:id/exec", user, s.onVMNode(s.execVM)},
		{http.MethodPut, "/vms/:id/files", user, s.onVMNode(s.putFile)},
		{http.MethodGet, "/vms/:id/files", user, s.onVMNode(s.getFile)},
		{http.MethodGet, "/vms/:id/snapshots", user, s.onVMNode(s.listSnapshots)},
		{http.MethodPost, "/vms/:id/snapshots", user, s.onVMNode(s.createSnapshot)},
		{http.MethodPost, "/vms/:id/snapshots/:snap/restore", user, s.onVMNode(s.restoreSnapshot)},
		{http.MethodDelete, "/vms/:id/snapshots/:snap", user, s.onVMNode(s.deleteSnapshot)},
		{http.MethodGet, "/vms/:id/logs", user, s.onVMNode(s.vmLogs)},
		{http.MethodGet, "/me/ssh-keys", user, s.listSSHKeys},
		{http.MethodPost, "/me/ssh-keys", user, s.addSSHKey},
		{http.MethodDelete, "/me/ssh-keys/:name", user, s.deleteSSHKey},
		{http.MethodGet, "/vms/:id/screenshot", user, s.onVMNode(s.screenshot)},
		{http.MethodGet, "/vms/:id/console/sessions", user, s.onVMNode(s.consoleSessions)},
		{http.MethodPost, "/vms/:id/console/links", user, s.onVMNode(s.createShareLink)},
		{http.MethodGet, "/vms/:id/console/links", user, s.onVMNode(s.listShareLinks)},
		{http.MethodDelete, "/vms/:id/console/links/:link", user, s.onVMNode(s.revokeShareLink)},
		{http.MethodPost, "/vms/:id/console/link-token", public, s.shareLinkToken}, // the link's secret is the authority
		{http.MethodPost, "/vms/:id/portforward", user, s.onOwner(s.portForwardToken)},
		{http.MethodGet, "/vms/:id/portforward", public, s.wsOnOwner(s.portForwardWS)}, // a one-time token or the bearer token is the authority
	}
}

// CloseStreams ends long-lived responses (event streams) so a graceful
// shutdown need not wait for their clients; register it with
// http.Server.RegisterOnShutdown.
func (s *Server) CloseStreams() { s.closeOnce.Do(func() { close(s.closing) }) }

// EndSessions closes, within the second, the consoles and event streams the
// given login sessions opened on this node (its console tokens are void
// already, as the session is). The logout and password-change handlers call
// it; the daemon connects it to the account service's session-end hook.
func (s *Server) EndSessions(ids ...string) { s.sessions.EndSessions(ids...) }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Echo exposes the router so other parts (console, web pages) can add routes.
func (s *Server) Echo() *echo.Echo { return s.echo }

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// newRequestID makes a request id: 16 hex digits.
func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// requestID takes a sane incoming X-Request-Id or makes one, and echoes it.
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !validRequestID.MatchString(id) {
			id = newRequestID()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

// Bounds of the access log's fields that the caller chooses: net/http
// takes a request line and headers of up to a megabyte, and a log line
// should not grow with them.
const (
	maxLogMethod    = 32
	maxLogPath      = 512
	maxLogUserAgent = 256
)

// accessLog writes one JSON line a request and counts it in the metrics.
// The query string is left out: it can carry tokens (the e-mail
// verification link).
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		req, res := c.Request(), c.Response()
		route, method := routeLabel(c.Path()), methodLabel(req.Method)
		took := time.Since(start)
		s.reqs.WithLabelValues(route, method, statusLabel(res.Status)).Inc()
		s.dur.WithLabelValues(route, method).Observe(took.Seconds())
		attrs := make([]any, 0, 24) // room for the optional pairs: one allocation
		attrs = append(attrs, "request_id", res.Header().Get(echo.HeaderXRequestID), "method", truncate(req.Method, maxLogMethod),
			"path", truncate(req.URL.Path, maxLogPath), "route", route, "status", res.Status, "bytes", res.Size,
			"duration_ms", float64(took.Microseconds())/1000, "remote_ip", c.RealIP())
		if ua := req.UserAgent(); ua != "" {
			attrs = append(attrs, "user_agent", truncate(ua, maxLogUserAgent))
		}
		if u, ok := c.Get(ctxUser).(store.User); ok {
			attrs = append(attrs, "user", u.ID)
		}
		s.log.Info("request", attrs...)
		return nil
	}
}

// Metric label values come from fixed sets: a value per junk method or
// path an unauthenticated caller sends would grow /metrics without bound.

// routeLabel is the matched route's pattern, or "unmatched".
func routeLabel(path string) string {
	if path == "" || path == "/*" {
		return "unmatched"
	}
	return path // a pattern of the route table, not the request's path
}

// methodLabel is the method when it is one of HTTP's own, else "other".
// It returns constants, so a label never holds on to a request's memory.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodHead:
		return http.MethodHead
	case http.MethodPost:
		return http.MethodPost
	case http.MethodPut:
		return http.MethodPut
	case http.MethodPatch:
		return http.MethodPatch
	case http.MethodDelete:
		return http.MethodDelete
	case http.MethodOptions:
		return http.MethodOptions
	case http.MethodConnect:
		return http.MethodConnect
	case http.MethodTrace:
		return http.MethodTrace
	}
	return "other"
}

// statusLabels are the status codes' label values, made once.
var statusLabels = func() (l [600]string) {
	for i := range l {
		l[i] = strconv.Itoa(i)
	}
	return l
}()

// statusLabel is the status code as a label value, without allocating.
func statusLabel(code int) string {
	if code < 0 || code >= len(statusLabels) {
		return "other"
	}
	return statusLabels[code]
}

func (s *Server) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if s.secure {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		return next(c)
	}
}

// readyz reports each backing service, "ok" or "unreachable", and is 503
// when any is down: a load balancer then sends requests elsewhere.
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	out := map[string]string{}
	if s.cfg.Ready != nil {
		for k, v := range s.cfg.Ready(ctx) {
			out[k] = v
		}
	}
	checks := map[string]func(context.Context) error{"store": s.cfg.Store.Ping}
	for name, check := range s.cfg.Checks {
		checks[name] = check
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		down bool
	)
	for name, check := range checks {
		wg.Go(func() {
			err := check(ctx)
			mu.Lock()
			defer mu.Unlock()
			out[name] = "ok"
			if err != nil {
				out[name], down = "unreachable", true
				s.log.Warn("readyz: backing service unreachable", "service", name, "err", err)
			}
		})
	}
	wg.Wait()
	if down {
		out["status"] = "unavailable"
		return c.JSON(http.StatusServiceUnavailable, out)
	}
	out["status"] = "ok"
	return c.JSON(http.StatusOK, out)
}

func (s *Server) version(c echo.Context) error {
	return c.JSON(http.StatusOK, api.Version{Version: s.cfg.Version})
}
