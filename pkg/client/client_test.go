package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
)

// recorded is one request as the test server saw it.
type recorded struct {
	Method, RawPath, Query, Auth, UA, ContentType string
	Body                                          string
}

func newServer(t *testing.T, status int, body string) (*httptest.Server, *recorded) {
	t.Helper()
	rec := &recorded{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*rec = recorded{
			Method: r.Method, RawPath: r.URL.EscapedPath(), Query: r.URL.RawQuery,
			Auth: r.Header.Get("Authorization"), UA: r.Header.Get("User-Agent"),
			ContentType: r.Header.Get("Content-Type"), Body: string(b),
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, rec
}

const vmJSON = `{"id":"vm_01","name":"web","template":"tiny","cpu":1,"memory_mb":256,"disk_gb":1,"state":"running","created_at":"2025-01-02T03:04:05Z"}`

func TestCalls(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		status     int
		body       string
		call       func(c *Client) (any, error)
		wantMethod string
		wantPath   string
		wantQuery  string
		wantBody   string
		check      func(t *testing.T, got any)
	}{
		{
			name: "signup", status: 201, body: `{"email":"a@b.c","message":"check mail"}`,
			call:       func(c *Client) (any, error) { return c.Signup(ctx, "a@b.c", "pw") },
			wantMethod: "POST", wantPath: "/api/v1/auth/signup", wantBody: `{"email":"a@b.c","password":"pw"}`,
			check: func(t *testing.T, got any) {
				if r := got.(*api.SignupResponse); r.Email != "a@b.c" || r.Message != "check mail" {
					t.Errorf("got %+v", r)
				}
			},
		},
		{
			name: "verify", status: 200, body: `{}`,
			call:       func(c *Client) (any, error) { return nil, c.Verify(ctx, "tok123") },
			wantMethod: "POST", wantPath: "/api/v1/auth/verify", wantBody: `{"token":"tok123"}`,
		},
		{
			name: "login", status: 200, body: `{"token":"s3cret","expires_at":"2030-01-01T00:00:00Z"}`,
			call:       func(c *Client) (any, error) { return c.Login(ctx, "a@b.c", "pw") },
			wantMethod: "POST", wantPath: "/api/v1/auth/login", wantBody: `{"email":"a@b.c","password":"pw","client":"cli"}`,
			check: func(t *testing.T, got any) {
				r := got.(*api.LoginResponse)
				if r.Token != "s3cret" || !r.ExpiresAt.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
					t.Errorf("got %+v", r)
				}
			},
		},
		{
			name: "logout 204", status: 204, body: ``,
			call:       func(c *Client) (any, error) { return nil, c.Logout(ctx) },
			wantMethod: "POST", wantPath: "/api/v1/auth/logout",
		},
		{
			name: "me", status: 200, body: `{"id":"u_1","email":"a@b.c","quota":{"vms":5,"cpus":8,"memory_mb":4096,"disk_gb":50},"usage":{"vms":1}}`,
			call:       func(c *Client) (any, error) { return c.Me(ctx) },
			wantMethod: "GET", wantPath: "/api/v1/me",
			check: func(t *testing.T, got any) {
				if u := got.(*api.User); u.Quota.VMs != 5 || u.Usage.VMs != 1 {
					t.Errorf("got %+v", u)
				}
			},
		},
		{
			name: "list", status: 200, body: `[` + vmJSON + `]`,
			call:       func(c *Client) (any, error) { return c.ListVMs(ctx, false) },
			wantMethod: "GET", wantPath: "/api/v1/vms",
			check: func(t *testing.T, got any) {
				if vms := got.([]api.VM); len(vms) != 1 || vms[0].State != api.StateRunning {
					t.Errorf("got %+v", vms)
				}
			},
		},
		{
			name: "list all empty", status: 200, body: `[]`,
			call:       func(c *Client) (any, error) { return c.ListVMs(ctx, true) },
			wantMethod: "GET", wantPath: "/api/v1/vms", wantQuery: "all=true",
			check: func(t *testing.T, got any) {
				if vms := got.([]api.VM); vms == nil || len(vms) != 0 {
					t.Errorf("want empty non-nil slice, got %#v", vms)
				}
			},
		},
		{
			name: "get escapes", status: 200, body: vmJSON,
			call:       func(c *Client) (any, error) { return c.GetVM(ctx, "a/b c?d") },
			wantMethod: "GET", wantPath: "/api/v1/vms/a%2Fb%20c%3Fd",
		},
		{
			name: "create", status: 201, body: vmJSON,
			call: func(c *Client) (any, error) {
				return c.CreateVM(ctx, api.CreateVMRequest{Name: "web", Template: "tiny", CPU: 2})
			},
			wantMethod: "POST", wantPath: "/api/v1/vms", wantBody: `{"name":"web","template":"tiny","cpu":2}`,
		},
		{
			name: "start", status: 202, body: vmJSON,
			call:       func(c *Client) (any, error) { return c.StartVM(ctx, "web") },
			wantMethod: "POST", wantPath: "/api/v1/vms/web/start",
		},
		{
			name: "stop", status: 202, body: vmJSON,
			call:       func(c *Client) (any, error) { return c.StopVM(ctx, "web", false) },
			wantMethod: "POST", wantPath: "/api/v1/vms/web/stop",
		},
		{
			name: "stop force", status: 202, body: vmJSON,
			call:       func(c *Client) (any, error) { return c.StopVM(ctx, "web", true) },
			wantMethod: "POST", wantPath: "/api/v1/vms/web/stop", wantQuery: "force=true",
		},
		{
			name: "delete", status: 202, body: vmJSON,
			call:       func(c *Client) (any, error) { return c.DeleteVM(ctx, "web") },
			wantMethod: "DELETE", wantPath: "/api/v1/vms/web",
			check: func(t *testing.T, got any) {
				if vm := got.(*api.VM); vm == nil || vm.Name != "web" {
					t.Errorf("got %+v", vm)
				}
			},
		},
		{
			name: "delete no body", status: 202, body: ``,
			call:       func(c *Client) (any, error) { return c.DeleteVM(ctx, "web") },
			wantMethod: "DELETE", wantPath: "/api/v1/vms/web",
			check: func(t *testing.T, got any) {
				if vm := got.(*api.VM); vm != nil {
					t.Errorf("want nil, got %+v", vm)
				}
			},
		},
		{
			name: "templates", status: 200, body: `[{"name":"tiny","size_bytes":1024,"sha256":"ab"}]`,
			call:       func(c *Client) (any, error) { return c.Templates(ctx) },
			wantMethod: "GET", wantPath: "/api/v1/templates",
		},
		{
			name: "console", status: 200, body: `{"url":"http://x/console","ws_url":"ws://x/ws","expires_at":"2030-01-01T00:00:00Z"}`,
			call:       func(c *Client) (any, error) { return c.Console(ctx, "web") },
			wantMethod: "GET", wantPath: "/api/v1/vms/web/console",
		},
		{
			name: "version", status: 200, body: `{"version":"1.2.3"}`,
			call:       func(c *Client) (any, error) { return c.Version(ctx) },
			wantMethod: "GET", wantPath: "/api/v1/version",
			check: func(t *testing.T, got any) {
				if v := got.(*api.Version); v.Version != "1.2.3" {
					t.Errorf("got %+v", v)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, rec := newServer(t, tt.status, tt.body)
			c := New(srv.URL, "tkn", WithVersion("1.0"))
			got, err := tt.call(c)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			if rec.Method != tt.wantMethod || rec.RawPath != tt.wantPath || rec.Query != tt.wantQuery {
				t.Errorf("request %s %s ?%s, want %s %s ?%s", rec.Method, rec.RawPath, rec.Query, tt.wantMethod, tt.wantPath, tt.wantQuery)
			}
			if rec.Auth != "Bearer tkn" {
				t.Errorf("Authorization = %q", rec.Auth)
			}
			if rec.UA != "vmctl/1.0" {
				t.Errorf("User-Agent = %q", rec.UA)
			}
			if tt.wantBody != "" {
				if rec.Body != tt.wantBody {
					t.Errorf("body = %s, want %s", rec.Body, tt.wantBody)
				}
				if !strings.HasPrefix(rec.ContentType, "application/json") {
					t.Errorf("Content-Type = %q", rec.ContentType)
				}
			}
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
}

func TestNoTokenSendsNoAuthorization(t *testing.T) {
	srv, rec := newServer(t, 200, `{"version":"x"}`)
	if _, err := New(srv.URL, "").Version(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rec.Auth != "" {
		t.Errorf("Authorization = %q, want none", rec.Auth)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		wantCode  string
		wantMsg   string
		wantReqID string
		is        func(error) bool
	}{
		{"json not found", 404, `{"error":{"code":"not_found","message":"vm web not found","request_id":"r1"}}`, "not_found", "vm web not found", "r1", IsNotFound},
		{"quota", 403, `{"error":{"code":"quota_exceeded","message":"quota of 1 vm reached"}}`, "quota_exceeded", "quota of 1 vm reached", "", IsQuotaExceeded},
		{"conflict", 409, `{"error":{"code":"conflict","message":"name taken"}}`, "conflict", "name taken", "", IsConflict},
		{"unauthenticated", 401, `{"error":{"code":"unauthenticated","message":"log in"}}`, "unauthenticated", "log in", "", IsUnauthenticated},
		{"invalid login", 401, `{"error":{"code":"invalid_credentials","message":"wrong"}}`, "invalid_credentials", "wrong", "", IsUnauthenticated},
		{"unverified", 403, `{"error":{"code":"email_unverified","message":"verify first"}}`, "email_unverified", "verify first", "", IsForbidden},
		{"validation", 422, `{"error":{"code":"validation_failed","message":"cpu too big"}}`, "validation_failed", "cpu too big", "", IsValidation},
		{"plain text 404", 404, "404 page not found\n", "not_found", "404 page not found", "", IsNotFound},
		{"html 502", 502, "<html><body>Bad Gateway</body></html>", "unavailable", "server answered 502 Bad Gateway", "", nil},
		{"empty 500", 500, "", "internal_error", "server answered 500 Internal Server Error", "", nil},
		{"json without code 409", 409, `{"message":"x"}`, "conflict", `{"message":"x"}`, "", IsConflict},
		{"json unavailable", 503, `{"error":{"code":"unavailable","message":"the database is unreachable; try again shortly","request_id":"r2"}}`, "unavailable", "the database is unreachable; try again shortly", "r2", IsUnavailable},
		{"json forward failed", 502, `{"error":{"code":"unavailable","message":"node b is unreachable","request_id":"r3"}}`, "unavailable", "node b is unreachable", "r3", IsUnavailable},
		{"json no capacity", 503, `{"error":{"code":"no_capacity","message":"no node has room"}}`, "no_capacity", "no node has room", "", IsUnavailable},
		{"plain 413 of a proxy", 413, "request entity too large", "request_too_large", "request entity too large", "", nil},
		{"plain 405", 405, "method not allowed", "method_not_allowed", "method not allowed", "", nil},
		{"html 507", 507, "<html>full</html>", "insufficient_storage", "server answered 507 Insufficient Storage", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newServer(t, tt.status, tt.body)
			_, err := New(srv.URL, "t").GetVM(context.Background(), "web")
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v (%T), want *APIError", err, err)
			}
			if ae.Status != tt.status || ae.Code != tt.wantCode || ae.Message != tt.wantMsg || ae.RequestID != tt.wantReqID {
				t.Errorf("got %+v", ae)
			}
			if tt.is != nil && !tt.is(err) {
				t.Errorf("helper said false for %v", err)
			}
			if !strings.Contains(err.Error(), "get vm web") {
				t.Errorf("error %q lacks context", err)
			}
		})
	}
}

func TestHelpersOnOtherErrors(t *testing.T) {
	err := errors.New("boom")
	if IsNotFound(err) || IsConflict(nil) || ErrorCode(err) != "" {
		t.Error("helpers matched a non-API error")
	}
}

func TestRequestIDFromHeader(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "hdr-1")
		w.WriteHeader(500)
		_ = json.NewEncoder(w).Encode(api.ErrorBody{Error: api.ErrorDetail{Code: api.CodeInternal, Message: "oops"}})
	}))
	defer srv.Close()
	_, err := New(srv.URL, "").Me(context.Background())
	var ae *APIError
	if !errors.As(err, &ae) || ae.RequestID != "hdr-1" {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "request hdr-1") {
		t.Errorf("message %q lacks request id", err)
	}
}

func TestConnectionErrorIsNotAPIError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := New(url, "").Me(context.Background())
	if err == nil || ErrorCode(err) != "" {
		t.Fatalf("err = %v", err)
	}
}

func TestContextCancel(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := New(srv.URL, "").Me(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
}

func TestBaseURL(t *testing.T) {
	tests := map[string]string{
		"http://h:8080":         "http://h:8080/api/v1",
		"http://h:8080/":        "http://h:8080/api/v1",
		"http://h:8080/api/v1":  "http://h:8080/api/v1",
		"http://h:8080/api/v1/": "http://h:8080/api/v1",
		"h:8080":                "http://h:8080/api/v1",
		"https://vmd.example":   "https://vmd.example/api/v1",
		"http://h/prefix":       "http://h/prefix/api/v1",
	}
	for in, want := range tests {
		if got := BaseURL(in); got != want {
			t.Errorf("BaseURL(%q) = %q, want %q", in, got, want)
		}
	}
	if got := New("h:1/api/v1", "").Server(); got != "http://h:1" {
		t.Errorf("Server() = %q", got)
	}
}
