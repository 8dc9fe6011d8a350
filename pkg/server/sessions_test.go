package server_test

import (
	"context"
	"errors"
	"github.com/vmdhq/vmd/internal/testutil"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// waitUntil polls cond until it holds, failing the test after timeout.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, timeout, what, cond)
}

// closedWithin waits for the console's close frame and wants the login
// session's reason, within d.
func closedWithin(t *testing.T, ws *websocket.Conn, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		_, _, err := ws.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation {
			t.Fatalf("console not closed for the ended session within %s: %v", d, err)
		}
		return
	}
}

// streamEndsWithin wants the event stream's body to end within d.
func (s *sseStream) endsWithin(d time.Duration) {
	s.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return
			}
		case <-deadline:
			s.t.Fatalf("event stream still open %s after its session ended", d)
		}
	}
}

// Sessions own what they open: ending the session closes its consoles and
// event streams within a second and voids its unused console tokens.
func TestSessionEndClosesWhatItOpened(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ce := newConsoleEnv(t, b, nil)
		t.Run("logout", func(t *testing.T) {
			alice := ce.signup("alice@example.com")
			ce.runningVM(alice, "web")
			ws, st, data := wsDial(t, ce.token(alice, "web").WSURL, nil)
			if ws == nil {
				t.Fatalf("console refused %d: %s", st, data)
			}
			stream := ce.on(alice).stream("", nil)
			if stream.res.StatusCode != 200 {
				t.Fatalf("events: %d", stream.res.StatusCode)
			}
			stream.next() // the head
			unused := ce.token(alice, "web")

			ce.on(alice).mustDo("POST", "/auth/logout", nil, 204, nil)
			closedWithin(t, ws, time.Second)
			stream.endsWithin(time.Second)
			_, st, data = wsDial(t, unused.WSURL, nil)
			wantError(t, st, data, 403, api.CodeInvalidToken)
		})
		t.Run("logout on another node", func(t *testing.T) {
			bob := ce.signup("bob@example.com")
			ce.runningVM(bob, "web")
			ws, st, data := wsDial(t, ce.token(bob, "web").WSURL, nil)
			if ws == nil {
				t.Fatalf("console refused %d: %s", st, data)
			}
			stream := ce.on(bob).stream("", nil)
			stream.next()
			// ce.env's server shares the store but not the console's node.
			bob.mustDo("POST", "/auth/logout", nil, 204, nil)
			// The other node notices on its next session check (1 s).
			closedWithin(t, ws, 2*time.Second)
			stream.endsWithin(2 * time.Second)
		})
		t.Run("password change ends the other sessions", func(t *testing.T) {
			carol := ce.signup("carol@example.com")
			ce.runningVM(carol, "web")
			other := *carol
			var lr api.LoginResponse
			other.mustDo("POST", "/auth/login", api.LoginRequest{Email: carol.email, Password: "correct horse battery", Client: "cli"}, 200, &lr)
			other.token = lr.Token
			ws, st, data := wsDial(t, ce.token(carol, "web").WSURL, nil)
			if ws == nil {
				t.Fatalf("console refused %d: %s", st, data)
			}
			unused := ce.token(carol, "web")
			mine, st, data := wsDial(t, ce.token(&other, "web").WSURL, nil)
			if mine == nil {
				t.Fatalf("console refused %d: %s", st, data)
			}
			ce.on(&other).mustDo("POST", "/auth/password", api.ChangePasswordRequest{CurrentPassword: "correct horse battery",
				NewPassword: "another horse battery"}, 204, nil)
			closedWithin(t, ws, time.Second)
			_, st, data = wsDial(t, unused.WSURL, nil)
			wantError(t, st, data, 403, api.CodeInvalidToken)
			// The session that changed the password keeps its console.
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			if _, _, err := mine.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("the changing session's console: %v", err)
			}
		})
	})
}
