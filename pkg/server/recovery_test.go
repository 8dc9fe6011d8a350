package server_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/mail/mailtest"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// mailsTo counts the e-mails to addr received so far.
func mailsTo(s *mailtest.Server, addr string) []mailtest.Message {
	var out []mailtest.Message
	for _, m := range s.Messages() {
		for _, to := range m.To {
			if to == addr {
				out = append(out, m)
			}
		}
	}
	return out
}

// waitMail waits for the n-th e-mail to addr (1-based) and returns it.
func waitMail(t *testing.T, s *mailtest.Server, addr string, n int) mailtest.Message {
	t.Helper()
	var ms []mailtest.Message
	if !testutil.WaitFor(10*time.Second, func() bool { ms = mailsTo(s, addr); return len(ms) >= n }) {
		t.Fatalf("e-mail %d to %s did not arrive; have %d", n, addr, len(ms))
	}
	return ms[n-1]
}

// noMore checks that no e-mail to addr beyond the n-th arrives: an e-mail
// to a control address sent after it (same path, same goroutine kind) must
// arrive first, so the check does not rest on a sleep.
func noMore(t *testing.T, e *env, addr string, n int) {
	t.Helper()
	anon := &user{e: e, client: e.srv.Client()}
	ctl := "control-" + time.Now().Format("150405.000000000") + "@example.com"
	anon.mustDo("POST", "/auth/signup", api.SignupRequest{Email: ctl, Password: "correct horse battery"}, 201, nil)
	waitMail(t, e.smtp, ctl, 1)
	if got := len(mailsTo(e.smtp, addr)); got != n {
		t.Fatalf("%d e-mails to %s, want %d", got, addr, n)
	}
}

func errBody(t *testing.T, data []byte) api.ErrorDetail {
	t.Helper()
	var eb api.ErrorBody
	if err := json.Unmarshal(data, &eb); err != nil {
		t.Fatalf("not an error body: %s", data)
	}
	return eb.Error
}

func TestResendVerification(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		anon := &user{e: e, client: e.srv.Client()}
		const addr = "ada@example.com"
		anon.mustDo("POST", "/auth/signup", api.SignupRequest{Email: addr, Password: "correct horse battery"}, 201, nil)
		waitMail(t, e.smtp, addr, 1)

		var known, unknown api.StatusResponse
		anon.mustDo("POST", "/auth/verify/resend", api.EmailRequest{Email: "ADA@example.com"}, 202, &known)
		second := waitMail(t, e.smtp, addr, 2)
		anon.mustDo("POST", "/auth/verify/resend", api.EmailRequest{Email: "nobody@example.com"}, 202, &unknown)
		if known != unknown {
			t.Fatalf("answers differ: %+v for an account, %+v for none", known, unknown)
		}
		// The new link verifies; then a resend sends nothing.
		anon.mustDo("POST", "/auth/verify", api.VerifyRequest{Token: second.Token()}, 200, nil)
		anon.mustDo("POST", "/auth/verify/resend", api.EmailRequest{Email: addr}, 202, nil)
		noMore(t, e, addr, 2)
		noMore(t, e, "nobody@example.com", 0)

		st, data := anon.do("POST", "/auth/verify/resend", api.EmailRequest{Email: "not an address"}, nil)
		wantError(t, st, data, 422, api.CodeValidation)
		if f := errBody(t, data).Field; f != "email" {
			t.Fatalf("field = %q, want email", f)
		}
		// The fourth request for one address in the window is throttled.
		anon.mustDo("POST", "/auth/verify/resend", api.EmailRequest{Email: addr}, 202, nil)
		st, data = anon.do("POST", "/auth/verify/resend", api.EmailRequest{Email: addr}, nil)
		wantError(t, st, data, 429, api.CodeRateLimited)
		if !strings.Contains(errBody(t, data).Message, "too many e-mail requests") {
			t.Fatalf("throttle message = %s", data)
		}
	})
}

func TestForgotAndResetPassword(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		anon := &user{e: e, client: e.srv.Client()}
		const addr = "ada@example.com"
		cliUser := e.signup(addr) // mail 1: verification
		web := e.browser(addr)

		var known, unknown api.StatusResponse
		anon.mustDo("POST", "/auth/password/forgot", api.EmailRequest{Email: addr}, 202, &known)
		first := waitMail(t, e.smtp, addr, 2)
		anon.mustDo("POST", "/auth/password/forgot", api.EmailRequest{Email: "nobody@example.com"}, 202, &unknown)
		if known != unknown {
			t.Fatalf("answers differ: %+v for an account, %+v for none", known, unknown)
		}
		if !strings.Contains(first.Data, "http://vmd.test/reset?token=") || first.Token() == "" {
			t.Fatalf("reset e-mail has no link built from the public URL:\n%s", first.Data)
		}
		anon.mustDo("POST", "/auth/password/forgot", api.EmailRequest{Email: addr}, 202, nil)
		second := waitMail(t, e.smtp, addr, 3)

		// A short password is refused by field, and does not use the token up.
		st, data := anon.do("POST", "/auth/password/reset", api.ResetPasswordRequest{Token: first.Token(), NewPassword: "short"}, nil)
		wantError(t, st, data, 422, api.CodeValidation)
		if d := errBody(t, data); d.Field != "new_password" || !strings.Contains(d.Message, "at least 8") {
			t.Fatalf("short password: %+v", d)
		}
		st, data = anon.do("POST", "/auth/password/reset", api.ResetPasswordRequest{Token: "made-up", NewPassword: "a new password"}, nil)
		wantError(t, st, data, 400, api.CodeInvalidToken)

		anon.mustDo("POST", "/auth/password/reset", api.ResetPasswordRequest{Token: first.Token(), NewPassword: "a new password"}, 200, nil)
		// Every session ended, the CLI token and the browser cookie alike.
		st, data = cliUser.do("GET", "/me", nil, nil)
		wantError(t, st, data, 401, api.CodeUnauthenticated)
		st, data = web.do("GET", "/me", nil, nil)
		wantError(t, st, data, 401, api.CodeUnauthenticated)
		// Used token, and the other link of the same account, no longer work.
		for _, tok := range []string{first.Token(), second.Token()} {
			st, data = anon.do("POST", "/auth/password/reset", api.ResetPasswordRequest{Token: tok, NewPassword: "yet another one"}, nil)
			wantError(t, st, data, 400, api.CodeInvalidToken)
		}
		st, data = anon.do("POST", "/auth/login", api.LoginRequest{Email: addr, Password: "correct horse battery"}, nil)
		wantError(t, st, data, 401, api.CodeInvalidLogin)
		anon.mustDo("POST", "/auth/login", api.LoginRequest{Email: addr, Password: "a new password", Client: "cli"}, 200, nil)

		// A link older than an hour has expired.
		anon.mustDo("POST", "/auth/password/forgot", api.EmailRequest{Email: addr}, 202, nil)
		late := waitMail(t, e.smtp, addr, 4)
		e.clock.Advance(61 * time.Minute)
		st, data = anon.do("POST", "/auth/password/reset", api.ResetPasswordRequest{Token: late.Token(), NewPassword: "yet another one"}, nil)
		wantError(t, st, data, 400, api.CodeInvalidToken)
		if !strings.Contains(errBody(t, data).Message, "expired") {
			t.Fatalf("expired token message: %s", data)
		}

		// Three requests for one address in 15 minutes, then 429.
		st, data = anon.do("POST", "/auth/password/forgot", api.EmailRequest{Email: addr}, nil)
		wantError(t, st, data, 429, api.CodeRateLimited)
		noMore(t, e, addr, 4)
	})
}

func TestDeleteAccount(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		const addr = "ada@example.com"
		u := e.signup(addr)
		other := e.signup("bob@example.com")
		for _, name := range []string{"web", "db"} {
			u.mustDo("POST", "/vms", api.CreateVMRequest{Name: name, Template: "tiny", MemoryMB: 128}, 201, nil)
		}
		other.mustDo("POST", "/vms", api.CreateVMRequest{Name: "web", Template: "tiny", MemoryMB: 128}, 201, nil)
		web := e.browser(addr)

		// A cookie call without the CSRF header is refused before anything happens.
		st, data := web.do("DELETE", "/me", api.DeleteAccountRequest{Password: "correct horse battery"}, nil)
		wantError(t, st, data, 403, api.CodeCSRF)
		st, data = u.do("DELETE", "/me", api.DeleteAccountRequest{Password: "wrong password"}, nil)
		wantError(t, st, data, 422, api.CodeValidation)
		if f := errBody(t, data).Field; f != "password" {
			t.Fatalf("field = %q, want password", f)
		}
		var vms []api.VM
		u.mustDo("GET", "/vms", nil, 200, &vms)
		if len(vms) != 2 {
			t.Fatalf("a refused delete removed VMs: %d left", len(vms))
		}

		var res api.StatusResponse
		web.mustDo("DELETE", "/me", api.DeleteAccountRequest{Password: "correct horse battery"}, 200, &res)
		if res.Status != "deleted" {
			t.Fatalf("delete me = %+v", res)
		}
		st, data = u.do("GET", "/me", nil, nil)
		wantError(t, st, data, 401, api.CodeUnauthenticated)
		anon := &user{e: e, client: e.srv.Client()}
		st, data = anon.do("POST", "/auth/login", api.LoginRequest{Email: addr, Password: "correct horse battery"}, nil)
		wantError(t, st, data, 401, api.CodeInvalidLogin)
		if _, err := e.store.GetUserByEmail(t.Context(), addr); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("user still stored: %v", err)
		}
		all, err := e.store.ListVMs(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 1 || all[0].Name != "web" {
			t.Fatalf("VMs left: %+v (want only bob's)", all)
		}
		// The address can sign up again.
		anon.mustDo("POST", "/auth/signup", api.SignupRequest{Email: addr, Password: "correct horse battery"}, 201, nil)
		waitMail(t, e.smtp, addr, 2)
	})
}

// TestValidationErrorNamesField: a create error carries the field it is about.
func TestValidationErrorNamesField(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.Backends()[0])
	u := e.signup("ada@example.com")
	for _, c := range []struct {
		req   api.CreateVMRequest
		field string
	}{
		{api.CreateVMRequest{Name: "Bad_Name", Template: "tiny"}, "name"},
		{api.CreateVMRequest{Name: "a", Template: "tiny", CPU: 100}, "cpu"},
		{api.CreateVMRequest{Name: "a", Template: "tiny", MemoryMB: 10}, "memory_mb"},
		{api.CreateVMRequest{Name: "a", Template: "nope"}, "template"},
	} {
		st, data := u.do("POST", "/vms", c.req, nil)
		wantError(t, st, data, 422, api.CodeValidation)
		if d := errBody(t, data); d.Field != c.field || !strings.HasPrefix(d.Message, c.field+": ") {
			t.Errorf("%+v: error %+v, want field %s", c.req, d, c.field)
		}
	}
}
