// Package client is the Go client of vmd's HTTP API. vmctl and the TUI use it;
// it speaks the wire types of pkg/api and rebuilds the server's typed errors
// as *APIError so callers can branch on the error code.
package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/vmdhq/vmd/pkg/api"
)

// DefaultTimeout bounds one API call when the caller's context has no deadline.
const DefaultTimeout = 60 * time.Second

// Client calls one vmd server with one bearer token. It is safe for
// concurrent use.
type Client struct {
	server string
	token  string
	rc     *resty.Client
}

// Option changes how New builds a Client.
type Option func(*settings)

type settings struct {
	httpClient *http.Client
	userAgent  string
	timeout    time.Duration
}

// WithHTTPClient makes the Client send its requests through hc, e.g. one
// with a custom transport or TLS configuration.
func WithHTTPClient(hc *http.Client) Option {
	return func(s *settings) { s.httpClient = hc }
}

// WithUserAgent sets the User-Agent header; the default is "vmctl/dev".
func WithUserAgent(ua string) Option {
	return func(s *settings) { s.userAgent = ua }
}

// WithVersion sets the User-Agent header to "vmctl/<version>".
func WithVersion(version string) Option {
	return func(s *settings) { s.userAgent = "vmctl/" + version }
}

// WithTimeout bounds each request; zero means no bound beyond the context's.
func WithTimeout(d time.Duration) Option {
	return func(s *settings) { s.timeout = d }
}

// New returns a Client for the vmd at server (e.g. "http://127.0.0.1:8080";
// a missing scheme means http, and a trailing /api/v1 is allowed) that
// authenticates with token when it is not empty.
func New(server, token string, opts ...Option) *Client {
	s := settings{userAgent: "vmctl/dev", timeout: DefaultTimeout}
	for _, o := range opts {
		o(&s)
	}
	var rc *resty.Client
	if s.httpClient != nil {
		rc = resty.NewWithClient(s.httpClient)
	} else {
		rc = resty.New()
	}
	base := BaseURL(server)
	rc.SetBaseURL(base).
		SetHeader("User-Agent", s.userAgent).
		SetHeader("Accept", "application/json").
		SetDisableWarn(true).
		SetRetryCount(0)
	if s.timeout > 0 {
		rc.SetTimeout(s.timeout)
	}
	if token != "" {
		rc.SetAuthToken(token)
	}
	return &Client{server: strings.TrimSuffix(base, api.BasePath), token: token, rc: rc}
}

// BaseURL turns what a user typed as server into the API's base URL.
func BaseURL(server string) string {
	s := strings.TrimSpace(server)
	if s != "" && !strings.Contains(s, "://") {
		s = "http://" + s
	}
	s = strings.TrimRight(s, "/")
	s = strings.TrimSuffix(s, api.BasePath)
	return s + api.BasePath
}

// Server returns the server's URL without the API base path.
func (c *Client) Server() string { return c.server }

// HasToken reports whether the Client sends a bearer token.
func (c *Client) HasToken() bool { return c.token != "" }

// Signup creates an account; the server sends a verification e-mail.
func (c *Client) Signup(ctx context.Context, email, password string) (*api.SignupResponse, error) {
	var out api.SignupResponse
	err := c.do(ctx, http.MethodPost, "/auth/signup", nil, api.SignupRequest{Email: email, Password: password}, &out)
	if err != nil {
		return nil, fmt.Errorf("signup %s: %w", email, err)
	}
	return &out, nil
}

// Verify confirms an e-mail address with the token from the verification e-mail.
func (c *Client) Verify(ctx context.Context, token string) error {
	if err := c.do(ctx, http.MethodPost, "/auth/verify", nil, api.VerifyRequest{Token: token}, nil); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	return nil
}

// Login exchanges an e-mail and password for a bearer token.
func (c *Client) Login(ctx context.Context, email, password string) (*api.LoginResponse, error) {
	var out api.LoginResponse
	err := c.do(ctx, http.MethodPost, "/auth/login", nil, api.LoginRequest{Email: email, Password: password, Client: "cli"}, &out)
	if err != nil {
		return nil, fmt.Errorf("login %s: %w", email, err)
	}
	return &out, nil
}

// Logout ends the session of the Client's token.
func (c *Client) Logout(ctx context.Context) error {
	if err := c.do(ctx, http.MethodPost, "/auth/logout", nil, nil, nil); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

// Me returns the authenticated user with quota and usage.
func (c *Client) Me(ctx context.Context) (*api.User, error) {
	var out api.User
	if err := c.do(ctx, http.MethodGet, "/me", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	return &out, nil
}

// ListVMs returns the caller's VMs, or every user's when all is true (admins only).
func (c *Client) ListVMs(ctx context.Context, all bool) ([]api.VM, error) {
	var q map[string]string
	if all {
		q = map[string]string{"all": "true"}
	}
	out := []api.VM{}
	if err := c.do(ctx, http.MethodGet, "/vms", q, nil, &out); err != nil {
		return nil, fmt.Errorf("list vms: %w", err)
	}
	return out, nil
}

// GetVM returns one VM, with its events, by id or name.
func (c *Client) GetVM(ctx context.Context, idOrName string) (*api.VM, error) {
	var out api.VM
	if err := c.do(ctx, http.MethodGet, "/vms/"+escape(idOrName), nil, nil, &out); err != nil {
		return nil, fmt.Errorf("get vm %s: %w", idOrName, err)
	}
	return &out, nil
}

// CreateVM creates a VM; the server provisions and starts it in the background.
func (c *Client) CreateVM(ctx context.Context, req api.CreateVMRequest) (*api.VM, error) {
	var out api.VM
	if err := c.do(ctx, http.MethodPost, "/vms", nil, req, &out); err != nil {
		return nil, fmt.Errorf("create vm %s: %w", req.Name, err)
	}
	return &out, nil
}

// StartVM asks the server to start a VM and returns it as accepted.
func (c *Client) StartVM(ctx context.Context, idOrName string) (*api.VM, error) {
	var out api.VM
	if err := c.do(ctx, http.MethodPost, "/vms/"+escape(idOrName)+"/start", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("start vm %s: %w", idOrName, err)
	}
	return &out, nil
}

// StopVM asks the server to stop a VM, powering it off at once when force is true.
func (c *Client) StopVM(ctx context.Context, idOrName string, force bool) (*api.VM, error) {
	var q map[string]string
	if force {
		q = map[string]string{"force": "true"}
	}
	var out api.VM
	if err := c.do(ctx, http.MethodPost, "/vms/"+escape(idOrName)+"/stop", q, nil, &out); err != nil {
		return nil, fmt.Errorf("stop vm %s: %w", idOrName, err)
	}
	return &out, nil
}

// DeleteVM asks the server to delete a VM and returns it as accepted (state
// deleting). The returned VM is nil when the server sent no body.
func (c *Client) DeleteVM(ctx context.Context, idOrName string) (*api.VM, error) {
	var out api.VM
	if err := c.do(ctx, http.MethodDelete, "/vms/"+escape(idOrName), nil, nil, &out); err != nil {
		return nil, fmt.Errorf("delete vm %s: %w", idOrName, err)
	}
	if out.ID == "" && out.Name == "" {
		return nil, nil
	}
	return &out, nil
}

// Templates lists the base images VMs can be created from.
func (c *Client) Templates(ctx context.Context) ([]api.Template, error) {
	out := []api.Template{}
	if err := c.do(ctx, http.MethodGet, "/templates", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	return out, nil
}

// Console returns short-lived URLs for a VM's graphical console.
func (c *Client) Console(ctx context.Context, idOrName string) (*api.ConsoleResponse, error) {
	var out api.ConsoleResponse
	if err := c.do(ctx, http.MethodGet, "/vms/"+escape(idOrName)+"/console", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("console of vm %s: %w", idOrName, err)
	}
	return &out, nil
}

// Version returns the server's version.
func (c *Client) Version(ctx context.Context) (*api.Version, error) {
	var out api.Version
	if err := c.do(ctx, http.MethodGet, "/version", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("server version: %w", err)
	}
	return &out, nil
}

// do sends one request and decodes a 2xx body into out (when out is not nil
// and the body is not empty) or a non-2xx body into *APIError.
func (c *Client) do(ctx context.Context, method, path string, query map[string]string, body, out any) error {
	r := c.rc.R().SetContext(ctx)
	if query != nil {
		r.SetQueryParams(query)
	}
	if body != nil {
		r.SetHeader("Content-Type", "application/json").SetBody(body)
	}
	resp, err := r.Execute(method, path)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		// resty's error already names the method and URL
		return err
	}
	if resp.StatusCode() < 200 || resp.StatusCode() > 299 {
		return newAPIError(resp.StatusCode(), resp.Header().Get("X-Request-Id"), resp.Body())
	}
	data := resp.Body()
	if out == nil || len(strings.TrimSpace(string(data))) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode response of %s %s: %w", method, path, err)
	}
	return nil
}

// escape makes an id or name one path segment, so "a/b" cannot reach
// another route.
func escape(s string) string {
	// Stricter than url.PathEscape, which keeps ":", "@", "+" and friends
	// that some routers treat specially.
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if isUnreserved(ch) {
			b.WriteByte(ch)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", ch)
	}
	return b.String()
}

func isUnreserved(ch byte) bool {
	return ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
		ch == '-' || ch == '_' || ch == '.' || ch == '~'
}
