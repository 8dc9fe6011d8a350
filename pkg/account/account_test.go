package account_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/account"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/mail"
	"github.com/vmdhq/vmd/pkg/mail/mailtest"
	"github.com/vmdhq/vmd/pkg/ratelimit"
	"github.com/vmdhq/vmd/pkg/redisx/redistest"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

const rightPassword = "correct horse battery"

// countingHasher counts the hashes and verifications that ran; with a gate
// set, each verification waits for the gate to open, so a test can hold
// attempts inside the hash. It stands in for Argon2id (password_test.go and
// the server tests use the real one) because these tests evaluate hundreds
// of passwords, which would take minutes under -race.
type countingHasher struct {
	hashes, verifies atomic.Int32
	gate             chan struct{}
}

func (h *countingHasher) Hash(_ context.Context, pw string) (string, error) {
	h.hashes.Add(1)
	return "test$" + pw, nil
}

func (h *countingHasher) Verify(ctx context.Context, pw, enc string) (bool, error) {
	h.verifies.Add(1)
	if h.gate != nil {
		select {
		case <-h.gate:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	return enc == "test$"+pw, nil
}

type fixture struct {
	svc    *account.Service
	hasher *countingHasher
	store  store.Store
	smtp   *mailtest.Server
}

type limiterBackend struct {
	name string
	open func(t *testing.T) ratelimit.Limiter
}

var limiters = []limiterBackend{
	{"memory", func(*testing.T) ratelimit.Limiter { return ratelimit.NewMemory() }},
	{"redis", func(t *testing.T) ratelimit.Limiter {
		rdb, prefix := redistest.Client(t)
		return ratelimit.NewRedis(rdb, prefix)
	}},
}

// eachBackend runs f on both stores, each with both limiters.
func eachBackend(t *testing.T, f func(t *testing.T, b storetest.Backend, lim func(*testing.T) ratelimit.Limiter)) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		for _, l := range limiters {
			t.Run(l.name, func(t *testing.T) { f(t, b, l.open) })
		}
	})
}

func newFixture(t *testing.T, b storetest.Backend, lim ratelimit.Limiter, tweak func(*account.Config)) *fixture {
	t.Helper()
	st := b.Open(t)
	smtpSrv := mailtest.Start(t)
	sender, err := mail.NewSMTPSender(smtpSrv.URL(), "vmd@example.com")
	if err != nil {
		t.Fatal(err)
	}
	h := &countingHasher{}
	c := account.Config{Store: st, Hasher: h, Limiter: lim, Mailer: sender, Secret: bytes.Repeat([]byte("k"), 32),
		PublicURL: "http://vmd.test", DefaultQuota: api.Quota{VMs: 1, CPUs: 1, MemoryMB: 256, DiskGB: 1},
		Log: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	if tweak != nil {
		tweak(&c)
	}
	svc, err := account.New(c)
	if err != nil {
		t.Fatal(err)
	}
	h.hashes.Store(0) // New hashed its timing dummy
	return &fixture{svc: svc, hasher: h, store: st, smtp: smtpSrv}
}

func (f *fixture) addUser(t *testing.T, email string) store.User {
	t.Helper()
	u, err := f.svc.AddUser(context.Background(), email, rightPassword, false)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func throttled(err error) bool {
	var te *account.ThrottledError
	return errors.As(err, &te)
}

// Defect 1: 60 logins at once from one IP, 59 wrong and the right one last.
// The attempt is counted before the hash, so only the (account, IP) limit's
// worth (5) is ever evaluated: the wrong ones are held inside the hash, the
// other 54 and then the right one get 429 at once.
func TestConcurrentLoginsAreCountedBeforeTheHash(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b storetest.Backend, lim func(*testing.T) ratelimit.Limiter) {
		f := newFixture(t, b, lim(t), nil)
		f.addUser(t, "ada@example.com")
		f.hasher.gate = make(chan struct{})
		var once sync.Once
		release := func() { once.Do(func() { close(f.hasher.gate) }) }
		t.Cleanup(release)

		const wrong, limit = 59, 5
		results := make(chan error, wrong)
		for i := range wrong {
			go func() {
				_, err := f.svc.Login(context.Background(), "ada@example.com", fmt.Sprintf("guess %d", i), "203.0.113.7", account.KindCLI)
				results <- err
			}()
		}
		deadline := time.After(20 * time.Second)
		for n := 0; n < wrong-limit; n++ {
			select {
			case err := <-results:
				if !throttled(err) {
					t.Fatalf("answer %d while %d hashes were held: %v, want throttled", n+1, limit, err)
				}
			case <-deadline:
				t.Fatalf("only %d of %d attempts answered 429 while the hashes were held; %d hashes started",
					n, wrong-limit, f.hasher.verifies.Load())
			}
		}
		_, err := f.svc.Login(context.Background(), "ada@example.com", rightPassword, "203.0.113.7", account.KindCLI)
		if !throttled(err) {
			t.Fatalf("the right password after %d held attempts: %v, want throttled", limit, err)
		}
		release()
		for range limit {
			if err := <-results; !errors.Is(err, account.ErrInvalidCredentials) {
				t.Fatalf("held attempt: %v, want invalid credentials", err)
			}
		}
		if n := f.hasher.verifies.Load(); n != limit {
			t.Fatalf("%d passwords evaluated, want %d", n, limit)
		}
		// The answer says when to come back.
		var te *account.ThrottledError
		_, err = f.svc.Login(context.Background(), "ada@example.com", rightPassword, "203.0.113.7", account.KindCLI)
		if !errors.As(err, &te) || te.RetryAfter <= 0 || te.RetryAfter > 15*time.Minute {
			t.Fatalf("later attempt: %v", err)
		}
	})
}

// A success gives its slot back and forgets the pair's failures; a caller
// that hangs up while queued for the hasher leaves no failure behind.
func TestLoginSuccessAndCancelDoNotCount(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b storetest.Backend, lim func(*testing.T) ratelimit.Limiter) {
		f := newFixture(t, b, lim(t), nil)
		f.addUser(t, "ada@example.com")
		ctx := context.Background()
		login := func(pw string) error {
			_, err := f.svc.Login(ctx, "ada@example.com", pw, "198.51.100.1", account.KindCLI)
			return err
		}
		for range 4 {
			if err := login("wrong password"); !errors.Is(err, account.ErrInvalidCredentials) {
				t.Fatal(err)
			}
		}
		for range 10 {
			if err := login(rightPassword); err != nil {
				t.Fatalf("right password: %v", err)
			}
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		for range 10 {
			if _, err := f.svc.Login(cctx, "ada@example.com", "wrong password", "198.51.100.1", account.KindCLI); !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled login: %v", err)
			}
		}
		for i := range 5 {
			if err := login("wrong password"); !errors.Is(err, account.ErrInvalidCredentials) {
				t.Fatalf("failure %d after a success: %v", i+1, err)
			}
		}
		if err := login(rightPassword); !throttled(err) {
			t.Fatalf("sixth failure in a row not throttled: %v", err)
		}
	})
}

// Defect 3: failures against one account, from one address (at once) or
// from many, never lock its owner out. The attacker's sources get 429; the
// owner, from an address that has not failed, logs in, slowed by at most
// AccountSlowdown once the account-wide count is past its threshold.
func TestOneSourceCannotLockAnAccountOut(t *testing.T) {
	t.Parallel()
	const slowdown = 300 * time.Millisecond
	for _, tc := range []struct {
		name    string
		sources int // attacker addresses
		each    int // concurrent attempts from each
		slowed  bool
	}{
		{"110 at once from one address", 1, 110, false},
		{"5 from each of 22 addresses", 22, 5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, b storetest.Backend, lim func(*testing.T) ratelimit.Limiter) {
				f := newFixture(t, b, lim(t), func(c *account.Config) { c.AccountSlowdown = slowdown })
				f.addUser(t, "bob@example.com")
				var wg sync.WaitGroup
				var refused atomic.Int32
				for s := range tc.sources {
					for range tc.each {
						wg.Add(1)
						go func() {
							defer wg.Done()
							_, err := f.svc.Login(context.Background(), "bob@example.com", "not it", fmt.Sprintf("203.0.113.%d", s+1), account.KindCLI)
							if throttled(err) {
								refused.Add(1)
							} else if !errors.Is(err, account.ErrInvalidCredentials) {
								t.Errorf("attack attempt: %v", err)
							}
						}()
					}
				}
				wg.Wait()
				if want := int32(tc.sources*tc.each - tc.sources*5); refused.Load() != want {
					t.Fatalf("%d attempts throttled, want %d (all beyond 5 per address)", refused.Load(), want)
				}
				// Each attacking address is now stopped, even with the right password.
				if _, err := f.svc.Login(context.Background(), "bob@example.com", rightPassword, "203.0.113.1", account.KindCLI); !throttled(err) {
					t.Fatalf("attacker address with the right password: %v, want throttled", err)
				}
				start := time.Now()
				if _, err := f.svc.Login(context.Background(), "bob@example.com", rightPassword, "192.0.2.50", account.KindBrowser); err != nil {
					t.Fatalf("owner from another address: %v", err)
				}
				took := time.Since(start)
				if took > slowdown+5*time.Second {
					t.Fatalf("owner's login took %s", took)
				}
				if tc.slowed && took < slowdown {
					t.Fatalf("owner's login after %d failures took %s, want the %s slowdown", tc.sources*5, took, slowdown)
				}
			})
		})
	}
}

// Defect 5: a taken address gets what a new one gets: the same answer,
// one password hash and one e-mail (a notice instead of a link); no second
// account is made.
func TestSignupDoesNotTellTakenAddresses(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, ratelimit.NewMemory(), nil)
		f.addUser(t, "taken@example.com")
		ctx := context.Background()
		for _, tc := range []struct{ email, subject string }{
			{"New@Example.com", "Verify your vmd account"},
			{"TAKEN@example.com", "Sign-up attempt for your vmd account"},
		} {
			before := f.hasher.hashes.Load()
			got, err := f.svc.Signup(ctx, tc.email, "some password")
			if err != nil {
				t.Fatalf("signup %s: %v", tc.email, err)
			}
			if got != strings.ToLower(tc.email) {
				t.Fatalf("signup %s answered %q", tc.email, got)
			}
			if n := f.hasher.hashes.Load() - before; n != 1 {
				t.Fatalf("signup %s hashed %d times, want 1", tc.email, n)
			}
			msg := f.smtp.WaitFor(t, strings.ToLower(tc.email), 5*time.Second)
			if !strings.Contains(msg.Data, tc.subject) {
				t.Fatalf("e-mail to %s is not %q:\n%s", tc.email, tc.subject, msg.Data)
			}
		}
		us, err := f.svc.ListUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var emails []string
		for _, u := range us {
			emails = append(emails, u.Email)
		}
		if !slices.Equal(emails, []string{"taken@example.com", "new@example.com"}) {
			t.Fatalf("accounts = %v", emails)
		}
		// The taken account keeps its password.
		if _, err := f.svc.Login(ctx, "taken@example.com", rightPassword, "192.0.2.1", account.KindCLI); err != nil {
			t.Fatalf("owner login after a sign-up attempt: %v", err)
		}
	})
}

// The verification e-mail's token can be pasted after `vmctl verify`.
func TestVerificationTokenIsSafeAsAnArgument(t *testing.T) {
	t.Parallel()
	f := newFixture(t, storetest.Backends()[0], ratelimit.NewMemory(), nil)
	for i := range 40 {
		email := fmt.Sprintf("u%d@example.com", i)
		if _, err := f.svc.Signup(context.Background(), email, "some password"); err != nil {
			t.Fatal(err)
		}
		msg := f.smtp.WaitFor(t, email, 5*time.Second)
		tok := msg.Token()
		if tok == "" || strings.HasPrefix(tok, "-") || strings.HasPrefix(tok, "_") {
			t.Fatalf("token %q", tok)
		}
		if !strings.Contains(msg.Data, "vmctl verify -- "+tok) {
			t.Fatalf("e-mail does not show 'vmctl verify -- TOKEN':\n%s", msg.Data)
		}
	}
}

// sessionLog records what OnSessionEnd announces.
type sessionLog struct {
	mu    sync.Mutex
	calls [][]string
}

func (l *sessionLog) record(ids ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, slices.Sorted(slices.Values(ids)))
}

func (l *sessionLog) take() [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.calls
	l.calls = nil
	return c
}

// Every way a session ends is announced with the ended sessions' ids, and
// a disabled user can neither log in nor use a session.
func TestSessionEndsAreAnnounced(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, ratelimit.NewMemory(), nil)
		ctx := context.Background()
		u := f.addUser(t, "cy@example.com")
		f.addUser(t, "other@example.com")
		var log sessionLog
		f.svc.OnSessionEnd(log.record)
		login := func(email, pw string) account.LoginResult {
			t.Helper()
			r, err := f.svc.Login(ctx, email, pw, "192.0.2.1", account.KindCLI)
			if err != nil {
				t.Fatalf("login %s: %v", email, err)
			}
			return r
		}
		want := func(what string, ids ...[]string) {
			t.Helper()
			for i := range ids {
				slices.Sort(ids[i])
			}
			if got := log.take(); fmt.Sprint(got) != fmt.Sprint(ids) {
				t.Fatalf("%s announced %v, want %v", what, got, ids)
			}
		}

		a := login("cy@example.com", rightPassword)
		if err := f.svc.Logout(ctx, a.Session.ID); err != nil {
			t.Fatal(err)
		}
		want("logout", []string{a.Session.ID})

		keep, b1, b2 := login("cy@example.com", rightPassword), login("cy@example.com", rightPassword), login("cy@example.com", rightPassword)
		otherUser := login("other@example.com", rightPassword)
		if err := f.svc.ChangePassword(ctx, u, keep.Session.ID, rightPassword, "a new password"); err != nil {
			t.Fatal(err)
		}
		want("password change", []string{b1.Session.ID, b2.Session.ID})

		c1 := login("cy@example.com", "a new password")
		if _, err := f.svc.SetDisabled(ctx, "cy@example.com", true); err != nil {
			t.Fatal(err)
		}
		want("disable", []string{keep.Session.ID, c1.Session.ID})
		for _, r := range []account.LoginResult{keep, c1} {
			if _, _, err := f.svc.Authenticate(ctx, r.Token); !errors.Is(err, account.ErrUnauthenticated) {
				t.Fatalf("session of a disabled user: %v", err)
			}
		}
		if _, _, err := f.svc.Authenticate(ctx, otherUser.Token); err != nil {
			t.Fatalf("another user's session after a disable: %v", err)
		}
		if _, err := f.svc.Login(ctx, "cy@example.com", "a new password", "192.0.2.1", account.KindCLI); !errors.Is(err, account.ErrDisabled) {
			t.Fatalf("login of a disabled user: %v, want ErrDisabled", err)
		}
		// Only the right password learns that the account is disabled.
		if _, err := f.svc.Login(ctx, "cy@example.com", "wrong", "192.0.2.1", account.KindCLI); !errors.Is(err, account.ErrInvalidCredentials) {
			t.Fatalf("wrong password on a disabled user: %v", err)
		}
		if got, err := f.svc.FindUser(ctx, u.ID); err != nil || !got.Disabled {
			t.Fatalf("stored user %+v, %v", got, err)
		}

		if _, err := f.svc.SetDisabled(ctx, u.ID, false); err != nil {
			t.Fatal(err)
		}
		want("enable")
		d := login("cy@example.com", "a new password")
		if err := f.svc.RevokeSessions(ctx, u.ID, ""); err != nil {
			t.Fatal(err)
		}
		want("revoke all", []string{d.Session.ID})
		if err := f.svc.RevokeSessions(ctx, u.ID, ""); err != nil {
			t.Fatal(err)
		}
		want("revoke with nothing open")
	})
}
