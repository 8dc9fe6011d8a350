package server_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/server"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

func TestAuthFlows(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		anon := &user{e: e, client: e.srv.Client()}

		t.Run("signup, e-mail, verify, login, me", func(t *testing.T) {
			u := e.signup("ada@example.com")
			var me api.User
			u.mustDo("GET", "/me", nil, 200, &me)
			if me.Email != "ada@example.com" || !me.Verified || me.Quota != testQuota || me.Usage != (api.Quota{}) {
				t.Fatalf("me = %+v", me)
			}
			msg := e.smtp.WaitFor(t, "ada@example.com", time.Second)
			if !strings.Contains(msg.Data, "http://vmd.test/verify?token=") {
				t.Fatalf("link not built from the public URL: %s", msg.Data)
			}
		})

		t.Run("verification token is single use", func(t *testing.T) {
			anon.mustDo("POST", "/auth/signup", api.SignupRequest{Email: "bob@example.com", Password: "correct horse battery"}, 201, nil)
			tok := e.smtp.WaitFor(t, "bob@example.com", 5*time.Second).Token()
			st, data := anon.do("GET", "/auth/verify?token="+tok, nil, nil)
			if st != 200 {
				t.Fatalf("GET verify = %d %s", st, data)
			}
			st, data = anon.do("POST", "/auth/verify", api.VerifyRequest{Token: tok}, nil)
			wantError(t, st, data, 400, api.CodeInvalidToken)
		})

		t.Run("unverified account cannot log in", func(t *testing.T) {
			anon.mustDo("POST", "/auth/signup", api.SignupRequest{Email: "carl@example.com", Password: "correct horse battery"}, 201, nil)
			st, data := anon.do("POST", "/auth/login", api.LoginRequest{Email: "carl@example.com", Password: "correct horse battery"}, nil)
			wantError(t, st, data, 403, api.CodeEmailUnverified)
			// A wrong password on an unverified account says nothing about verification.
			st, data = anon.do("POST", "/auth/login", api.LoginRequest{Email: "carl@example.com", Password: "wrong password!"}, nil)
			wantError(t, st, data, 401, api.CodeInvalidLogin)
		})

		t.Run("duplicate signup gets the same answer and no second account", func(t *testing.T) {
			// Defect 5: the answer carried the new account's id, and "" for a taken address.
			answer := func(email string) (int, map[string]any) {
				st, data := anon.do("POST", "/auth/signup", api.SignupRequest{Email: email, Password: "another password"}, nil)
				var body map[string]any
				if err := json.Unmarshal(data, &body); err != nil {
					t.Fatalf("signup %s: %d %s", email, st, data)
				}
				body["email"] = strings.ReplaceAll(body["email"].(string), "fresh", "ada")
				return st, body
			}
			stTaken, taken := answer("ADA@example.com")
			stNew, fresh := answer("fresh@example.com")
			if stTaken != 201 || stNew != 201 || fmt.Sprint(taken) != fmt.Sprint(fresh) {
				t.Fatalf("taken address: %d %v\nnew address:   %d %v", stTaken, taken, stNew, fresh)
			}
			if _, ok := fresh["id"]; ok {
				t.Fatalf("sign-up answer names the account: %v", fresh)
			}
			if msg := e.smtp.WaitFor(t, "ada@example.com", 5*time.Second); !strings.Contains(msg.Data, "already has an account") {
				t.Fatalf("owner of the taken address not told: %s", msg.Data)
			}
			us, err := e.store.ListUsers(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, u := range us {
				if u.Email == "ada@example.com" {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%d accounts for ada", n)
			}
		})

		t.Run("wrong password and unknown e-mail look alike", func(t *testing.T) {
			for _, email := range []string{"ada@example.com", "nobody@example.com"} {
				st, data := anon.do("POST", "/auth/login", api.LoginRequest{Email: email, Password: "not the password"}, nil)
				wantError(t, st, data, 401, api.CodeInvalidLogin)
			}
		})

		t.Run("missing, malformed and forged tokens", func(t *testing.T) {
			for name, h := range map[string]string{
				"none": "", "not bearer": "Basic abc", "garbage": "Bearer xyz",
				"forged":   "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4IiwianRpIjoieSJ9.c2lnbmF0dXJl",
				"alg none": "Bearer eyJhbGciOiJub25lIn0.eyJpc3MiOiJ2bWQiLCJzdWIiOiJ4IiwianRpIjoieSIsImV4cCI6OTk5OTk5OTk5OX0.",
			} {
				hdr := map[string]string{}
				if h != "" {
					hdr["Authorization"] = h
				}
				st, data := anon.do("GET", "/me", nil, hdr)
				if st != 401 {
					t.Errorf("%s: %d %s", name, st, data)
				}
			}
		})

		t.Run("logout revokes the session", func(t *testing.T) {
			u := e.signup("dan@example.com")
			u.mustDo("POST", "/auth/logout", nil, 204, nil)
			st, data := u.do("GET", "/me", nil, nil)
			wantError(t, st, data, 401, api.CodeUnauthenticated)
		})

		t.Run("expired session", func(t *testing.T) {
			u := e.signup("eve@example.com")
			b := e.browser("eve@example.com")
			u.mustDo("GET", "/me", nil, 200, nil)
			b.mustDo("GET", "/me", nil, 200, nil)
			e.clock.Advance(13 * time.Hour) // past the browser TTL, within the CLI's
			st, data := b.do("GET", "/me", nil, nil)
			wantError(t, st, data, 401, api.CodeUnauthenticated)
			u.mustDo("GET", "/me", nil, 200, nil)
			e.clock.Advance(31 * 24 * time.Hour)
			st, data = u.do("GET", "/me", nil, nil)
			wantError(t, st, data, 401, api.CodeUnauthenticated)
		})

		t.Run("password change ends other sessions", func(t *testing.T) {
			u := e.signup("fay@example.com")
			other := e.browser("fay@example.com")
			u.mustDo("POST", "/auth/password", api.ChangePasswordRequest{CurrentPassword: "correct horse battery", NewPassword: "new long password"}, 204, nil)
			u.mustDo("GET", "/me", nil, 200, nil) // the session that changed it stays
			st, data := other.do("GET", "/me", nil, nil)
			wantError(t, st, data, 401, api.CodeUnauthenticated)
			st, data = anon.do("POST", "/auth/login", api.LoginRequest{Email: "fay@example.com", Password: "correct horse battery"}, nil)
			wantError(t, st, data, 401, api.CodeInvalidLogin)
			anon.mustDo("POST", "/auth/login", api.LoginRequest{Email: "fay@example.com", Password: "new long password"}, 200, nil)
		})

		t.Run("browser session: cookie flags and CSRF", func(t *testing.T) {
			e.signup("gus@example.com")
			st, _ := anon.do("POST", "/auth/login", api.LoginRequest{Email: "gus@example.com", Password: "correct horse battery"}, nil)
			if st != 200 {
				t.Fatal(st)
			}
			res, err := e.srv.Client().Post(e.srv.URL+api.BasePath+"/auth/login", "application/json",
				strings.NewReader(`{"email":"gus@example.com","password":"correct horse battery"}`))
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			var sess *http.Cookie
			for _, c := range res.Cookies() {
				if c.Name == server.SessionCookie {
					sess = c
				}
			}
			if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode || sess.Secure {
				t.Fatalf("session cookie = %+v", sess)
			}

			b := e.browser("gus@example.com")
			b.mustDo("GET", "/me", nil, 200, nil) // safe method: no CSRF header needed
			create := api.CreateVMRequest{Name: "web", Template: "tiny"}
			st, data := b.do("POST", "/vms", create, nil)
			wantError(t, st, data, 403, api.CodeCSRF)
			st, data = b.do("POST", "/vms", create, map[string]string{server.CSRFHeader: "wrong"})
			wantError(t, st, data, 403, api.CodeCSRF)
			st, data = b.do("POST", "/vms", create, map[string]string{server.CSRFHeader: b.csrf, "Sec-Fetch-Site": "cross-site"})
			wantError(t, st, data, 403, api.CodeCSRF)
			st, data = b.do("POST", "/auth/logout", nil, nil)
			wantError(t, st, data, 403, api.CodeCSRF)
			b.mustDo("POST", "/vms", create, 201, nil)
			// Another session's CSRF token does not fit this one.
			b2 := e.browser("gus@example.com")
			st, data = b2.do("DELETE", "/vms/web", nil, map[string]string{server.CSRFHeader: b.csrf})
			wantError(t, st, data, 403, api.CodeCSRF)
			b.mustDo("POST", "/auth/logout", nil, 204, nil)
			st, data = b.do("GET", "/me", nil, nil)
			wantError(t, st, data, 401, api.CodeUnauthenticated)
		})

		t.Run("login throttling per account and IP", func(t *testing.T) {
			e.signup("hal@example.com")
			for i := 0; i < 5; i++ {
				st, data := anon.do("POST", "/auth/login", api.LoginRequest{Email: "hal@example.com", Password: "guess " + strings.Repeat("x", i)}, nil)
				wantError(t, st, data, 401, api.CodeInvalidLogin)
			}
			// Throttled now, even with the right password.
			st, data := anon.do("POST", "/auth/login", api.LoginRequest{Email: "hal@example.com", Password: "correct horse battery"}, nil)
			wantError(t, st, data, 429, api.CodeRateLimited)
			// Other accounts from the same IP are not locked out.
			e.signup("ida@example.com")
		})

		t.Run("concurrent logins are counted before the hash", func(t *testing.T) {
			// Defect 1: 60 at once all passed a check made before any failure was counted.
			e.signup("jo@example.com")
			statuses := make(chan int, 60)
			var wg sync.WaitGroup
			for i := range 60 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st, _ := anon.do("POST", "/auth/login", api.LoginRequest{Email: "jo@example.com", Password: fmt.Sprintf("guess %d", i)}, nil)
					statuses <- st
				}()
			}
			wg.Wait()
			close(statuses)
			count := map[int]int{}
			for st := range statuses {
				count[st]++
			}
			if count[401] != 5 || count[429] != 55 {
				t.Fatalf("answers %v, want 5 evaluated (401) and 55 refused (429)", count)
			}
			st, data := anon.do("POST", "/auth/login", api.LoginRequest{Email: "jo@example.com", Password: "correct horse battery"}, nil)
			wantError(t, st, data, 429, api.CodeRateLimited)
		})
	})
}

func TestErrorShapeAndRequestID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.Backends()[0])
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/nope", nil)
	req.Header.Set("X-Request-Id", "abc-123")
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var eb api.ErrorBody
	if err := json.NewDecoder(res.Body).Decode(&eb); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 404 || eb.Error.Code != api.CodeNotFound || res.Header.Get("X-Request-Id") != "abc-123" || eb.Error.RequestID != "abc-123" {
		t.Fatalf("%d %+v %q", res.StatusCode, eb, res.Header.Get("X-Request-Id"))
	}
	req, _ = http.NewRequest("GET", e.srv.URL+"/healthz", nil)
	req.Header.Set("X-Request-Id", "bad id with spaces")
	res, err = e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if id := res.Header.Get("X-Request-Id"); id == "" || strings.Contains(id, " ") {
		t.Fatalf("request id = %q", id)
	}
}

// Behind a trusted proxy the throttle counts the client named in
// X-Forwarded-For; from anywhere else that header is ignored.
func TestThrottleBehindTrustedProxy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		trusted string
		// whether a fresh X-Forwarded-For address escapes the first address's throttle
		separate bool
	}{
		{"trusted loopback proxy", "127.0.0.0/8", true},
		{"untrusted client headers", "10.9.0.0/16", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, n, _ := net.ParseCIDR(tc.trusted)
			e := newEnvWith(t, storetest.Backends()[0], func(c *server.Config) { c.TrustedProxies = []*net.IPNet{n} })
			e.signup("kim@example.com")
			anon := &user{e: e, client: e.srv.Client()}
			for i := 0; i < 5; i++ {
				anon.do("POST", "/auth/login", api.LoginRequest{Email: "kim@example.com", Password: "wrong password"}, map[string]string{"X-Forwarded-For": "203.0.113.7"})
			}
			st, _ := anon.do("POST", "/auth/login", api.LoginRequest{Email: "kim@example.com", Password: "correct horse battery"}, map[string]string{"X-Forwarded-For": "203.0.113.7"})
			if st != 429 {
				t.Fatalf("sixth login from the same client = %d, want 429", st)
			}
			st, _ = anon.do("POST", "/auth/login", api.LoginRequest{Email: "kim@example.com", Password: "correct horse battery"}, map[string]string{"X-Forwarded-For": "198.51.100.9"})
			if got := st == 200; got != tc.separate {
				t.Fatalf("login from another forwarded address = %d", st)
			}
		})
	}
}
