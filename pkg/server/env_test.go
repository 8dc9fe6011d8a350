package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/account"
	"github.com/vmdhq/vmd/pkg/account/accounttest"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/image"
	"github.com/vmdhq/vmd/pkg/mail"
	"github.com/vmdhq/vmd/pkg/mail/mailtest"
	"github.com/vmdhq/vmd/pkg/ratelimit"
	"github.com/vmdhq/vmd/pkg/server"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm"
)

// clock is a settable time source shared by the services under test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// env is a whole vmd HTTP stack on one store backend, with a real SMTP server.
type env struct {
	t        *testing.T
	srv      *httptest.Server
	store    store.Store
	smtp     *mailtest.Server
	accounts *account.Service
	clock    *clock
}

var testQuota = api.Quota{VMs: 3, CPUs: 4, MemoryMB: 2048, DiskGB: 20}

func newEnv(t *testing.T, b storetest.Backend) *env {
	t.Helper()
	return newEnvWith(t, b, nil)
}

// newEnvWith is newEnv with a hook that changes the server's config.
func newEnvWith(t *testing.T, b storetest.Backend, tweak func(*server.Config)) *env {
	t.Helper()
	e := buildEnv(t, b, tweak)
	e.t = t
	return e
}

// buildEnv is newEnvWith for any testing.TB (a fuzz target's *testing.F);
// the caller sets env.t before using the helpers.
func buildEnv(t testing.TB, b storetest.Backend, tweak func(*server.Config)) *env {
	t.Helper()
	st := b.Open(t)
	smtpSrv := mailtest.Start(t)
	sender, err := mail.NewSMTPSender(smtpSrv.URL(), "vmd@example.com")
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	accounts, err := account.New(account.Config{Store: st, Hasher: accounttest.Hasher(), Limiter: ratelimit.NewMemory(),
		Mailer: sender, Secret: bytes.Repeat([]byte("k"), 32), PublicURL: "http://vmd.test", DefaultQuota: testQuota,
		Log: log, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	imgDir := filepath.Join(t.TempDir(), "images")
	makeTemplate(t, imgDir, "tiny")
	vms := vm.NewService(vm.ServiceConfig{Store: st, Templates: image.NewCatalog(imgDir), Node: "test"})
	cfg := server.Config{Accounts: accounts, VMs: vms, Store: st, PublicURL: "http://vmd.test", Log: log, Version: "test"}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(s)
	hs.Listener = server.Listener(hs.Listener, log) // as vmd serves: net/http's own refusals in JSON too
	hs.Start()
	t.Cleanup(hs.Close)
	return &env{srv: hs, store: st, smtp: smtpSrv, accounts: accounts, clock: clk}
}

// makeTemplate writes a small real qcow2 file as template name.
func makeTemplate(t testing.TB, dir, name string) {
	t.Helper()
	if err := exec.Command("mkdir", "-p", dir).Run(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", filepath.Join(dir, name+".qcow2"), "64M").CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img (install qemu-utils: make deps): %v: %s", err, out)
	}
}

// user is an HTTP client acting as one account, by bearer token or by cookie.
type user struct {
	e      *env
	email  string
	token  string // bearer; empty for cookie clients
	csrf   string
	client *http.Client
}

// signup goes through the real sign-up, e-mail and verification flow, then logs in with a bearer token.
func (e *env) signup(email string) *user {
	e.t.Helper()
	u := &user{e: e, email: email, client: e.srv.Client()}
	u.mustDo("POST", "/auth/signup", api.SignupRequest{Email: email, Password: "correct horse battery"}, 201, nil)
	tok := e.smtp.WaitFor(e.t, email, 5*time.Second).Token()
	if tok == "" {
		e.t.Fatalf("no token in verification e-mail to %s", email)
	}
	u.mustDo("POST", "/auth/verify", api.VerifyRequest{Token: tok}, 200, nil)
	var lr api.LoginResponse
	u.mustDo("POST", "/auth/login", api.LoginRequest{Email: email, Password: "correct horse battery", Client: "cli"}, 200, &lr)
	u.token = lr.Token
	return u
}

// browser logs in as a browser would: session and CSRF cookies in a jar.
func (e *env) browser(email string) *user {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	u := &user{e: e, email: email, client: c}
	var lr api.LoginResponse
	u.mustDo("POST", "/auth/login", api.LoginRequest{Email: email, Password: "correct horse battery"}, 200, &lr)
	u.csrf = lr.CSRFToken
	return u
}

func (u *user) do(method, path string, body any, hdr map[string]string) (int, []byte) {
	u.e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		r = bytes.NewReader(j)
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, u.e.srv.URL+api.BasePath+path, r)
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if u.token != "" {
		req.Header.Set("Authorization", "Bearer "+u.token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := u.client.Do(req)
	if err != nil {
		u.e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, data
}

func (u *user) mustDo(method, path string, body any, want int, out any) {
	u.e.t.Helper()
	hdr := map[string]string{}
	if u.csrf != "" {
		hdr[server.CSRFHeader] = u.csrf
	}
	got, data := u.do(method, path, body, hdr)
	if got != want {
		u.e.t.Fatalf("%s %s = %d, want %d: %s", method, path, got, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			u.e.t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
}

// wantError checks a response is the contract's error shape with the given status and code.
// errorMessage is the message of an error body.
func errorMessage(t *testing.T, data []byte) string {
	t.Helper()
	var eb api.ErrorBody
	if err := json.Unmarshal(data, &eb); err != nil {
		t.Fatalf("not an error body: %s", data)
	}
	return eb.Error.Message
}

func wantError(t *testing.T, status int, data []byte, wantStatus int, wantCode string) {
	t.Helper()
	var eb api.ErrorBody
	if err := json.Unmarshal(data, &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
		t.Fatalf("not an error body (%d): %s", status, data)
	}
	if status != wantStatus || eb.Error.Code != wantCode {
		t.Fatalf("got %d %s (%s), want %d %s", status, eb.Error.Code, eb.Error.Message, wantStatus, wantCode)
	}
}
