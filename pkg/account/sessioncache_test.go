package account_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/account"
	"github.com/vmdhq/vmd/pkg/ratelimit"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// readCountingStore counts the session and user reads Authenticate makes;
// with hold set, GetUser signals held and waits for release, so a test can
// end the session while a validation is in flight.
type readCountingStore struct {
	store.Store
	sessions, users atomic.Int32

	hold          atomic.Bool
	held, release chan struct{}
}

func (s *readCountingStore) GetSession(ctx context.Context, id string) (store.Session, error) {
	s.sessions.Add(1)
	return s.Store.GetSession(ctx, id)
}

func (s *readCountingStore) GetUser(ctx context.Context, id string) (store.User, error) {
	s.users.Add(1)
	u, err := s.Store.GetUser(ctx, id)
	if s.hold.CompareAndSwap(true, false) {
		close(s.held)
		<-s.release
	}
	return u, err
}

// Validated sessions are kept for SessionCacheTTL, so a request
// costs no store reads; every way this node ends a session or changes a
// user takes effect for the very next request, a change made by another
// node (straight to the store here) within the TTL, and a token past its
// expiry is refused even while cached.
func TestSessionCache(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		type fixtureWithCount struct {
			*fixture
			reads *readCountingStore
			clock *settableClock
		}
		setup := func(t *testing.T) fixtureWithCount {
			var rs *readCountingStore
			clk := &settableClock{t: time.Now()}
			f := newFixture(t, b, ratelimit.NewMemory(), func(c *account.Config) {
				rs = &readCountingStore{Store: c.Store}
				c.Store, c.Now = rs, clk.Now
			})
			f.addUser(t, "ada@example.com")
			return fixtureWithCount{f, rs, clk}
		}
		login := func(t *testing.T, f fixtureWithCount) account.LoginResult {
			t.Helper()
			r, err := f.svc.Login(ctx, "ada@example.com", rightPassword, "192.0.2.1", account.KindCLI)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		authOK := func(t *testing.T, f fixtureWithCount, r account.LoginResult, what string) {
			t.Helper()
			u, s, err := f.svc.Authenticate(ctx, r.Token)
			if err != nil || u.ID != r.User.ID || s.ID != r.Session.ID {
				t.Fatalf("%s: Authenticate = %s, %s, %v; want user %s session %s", what, u.ID, s.ID, err, r.User.ID, r.Session.ID)
			}
		}
		refused := func(f fixtureWithCount, r account.LoginResult) bool {
			_, _, err := f.svc.Authenticate(ctx, r.Token)
			return errors.Is(err, account.ErrUnauthenticated)
		}

		t.Run("reads the store once a TTL", func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			r := login(t, f)
			for range 20 {
				authOK(t, f, r, "cached")
			}
			if s, u := f.reads.sessions.Load(), f.reads.users.Load(); s != 1 || u != 1 {
				t.Fatalf("20 authentications read %d sessions and %d users, want 1 of each", s, u)
			}
		})

		// Ends on this node: refused at once, however recently validated.
		for _, tc := range []struct {
			name string
			end  func(t *testing.T, f fixtureWithCount, r account.LoginResult)
		}{
			{"logout", func(t *testing.T, f fixtureWithCount, r account.LoginResult) {
				if err := f.svc.Logout(ctx, r.Session.ID); err != nil {
					t.Fatal(err)
				}
			}},
			{"password change from another session", func(t *testing.T, f fixtureWithCount, r account.LoginResult) {
				other := login(t, f)
				if err := f.svc.ChangePassword(ctx, other.User, other.Session.ID, rightPassword, "a new password"); err != nil {
					t.Fatal(err)
				}
				authOK(t, f, other, "the session that changed the password")
			}},
			{"user disabled", func(t *testing.T, f fixtureWithCount, r account.LoginResult) {
				if _, err := f.svc.SetDisabled(ctx, r.User.ID, true); err != nil {
					t.Fatal(err)
				}
			}},
			{"all sessions revoked", func(t *testing.T, f fixtureWithCount, r account.LoginResult) {
				if err := f.svc.RevokeSessions(ctx, r.User.ID, ""); err != nil {
					t.Fatal(err)
				}
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				f := setup(t)
				r := login(t, f)
				authOK(t, f, r, "before")
				tc.end(t, f, r)
				if !refused(f, r) {
					t.Fatalf("session still accepted right after the %s on this node", tc.name)
				}
			})
		}

		// Ends elsewhere (another node, `vmd user` on the same database):
		// refused within the TTL.
		for _, tc := range []struct {
			name string
			end  func(f fixtureWithCount, r account.LoginResult) error
		}{
			{"revoked elsewhere", func(f fixtureWithCount, r account.LoginResult) error {
				return f.store.RevokeSession(ctx, r.Session.ID, time.Now())
			}},
			{"disabled elsewhere", func(f fixtureWithCount, r account.LoginResult) error {
				return f.store.SetDisabled(ctx, r.User.ID, true)
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				f := setup(t)
				r := login(t, f)
				authOK(t, f, r, "before")
				start := time.Now()
				if err := tc.end(f, r); err != nil {
					t.Fatal(err)
				}
				testutil.Eventually(t, 5*time.Second, "the session refused", func() bool { return refused(f, r) })
				if took := time.Since(start); took > account.DefaultSessionCacheTTL+time.Second {
					t.Fatalf("refused after %s, want within the TTL (%s) and a poll", took, account.DefaultSessionCacheTTL)
				}
			})
		}

		t.Run("expiry while cached", func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			r := login(t, f)
			authOK(t, f, r, "before")
			f.clock.Set(r.Session.ExpiresAt)
			if !refused(f, r) {
				t.Fatal("an expired session accepted from the cache")
			}
		})

		t.Run("ended while being validated", func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			r := login(t, f)
			f.reads.held, f.reads.release = make(chan struct{}), make(chan struct{})
			f.reads.hold.Store(true)
			done := make(chan error, 1)
			go func() { _, _, err := f.svc.Authenticate(ctx, r.Token); done <- err }()
			<-f.reads.held // the session row was read: still open
			if err := f.svc.Logout(ctx, r.Session.ID); err != nil {
				t.Fatal(err)
			}
			close(f.reads.release)
			<-done // it read an open session; what matters is that it is not kept
			if !refused(f, r) {
				t.Fatal("a validation that raced the logout was cached")
			}
		})
	})
}

// settableClock is the service's clock (session expiry); the cache's TTL
// runs on the wall clock.
type settableClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *settableClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *settableClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
