package account

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oklog/ulid/v2"

	"github.com/vmdhq/vmd/pkg/store"
)

// OnSessionEnd registers fn to be told the ids of sessions that just ended:
// by Logout, by ChangePassword (the user's other sessions), by DisableUser
// and by RevokeSessions. It is called after the store has recorded the end,
// in the caller's goroutine, so fn must return quickly (hand the ids to a
// goroutine of its own). Whatever a session opened (consoles, event
// streams) is the subscriber's to close.
func (s *Service) OnSessionEnd(fn func(sessionIDs ...string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessionEnd = append(s.sessionEnd, fn)
}

// endedSessions announces ended sessions to every subscriber.
func (s *Service) endedSessions(ids ...string) {
	if len(ids) == 0 {
		return
	}
	s.mu.Lock()
	fns := append([]func(...string){}, s.sessionEnd...)
	s.mu.Unlock()
	for _, fn := range fns {
		fn(ids...)
	}
}

func (s *Service) openSession(ctx context.Context, u store.User, kind string) (LoginResult, error) {
	ttl := s.c.BrowserTTL
	if kind == KindCLI {
		ttl = s.c.CLITTL
	} else {
		kind = KindBrowser
	}
	now := s.c.Now().UTC()
	sess := store.Session{ID: "ses_" + strings.ToLower(ulid.Make().String()), UserID: u.ID, Kind: kind,
		CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := s.c.Store.CreateSession(ctx, sess); err != nil {
		return LoginResult{}, fmt.Errorf("create session: %w", err)
	}
	claims := jwt.RegisteredClaims{Issuer: "vmd", Subject: u.ID, ID: sess.ID,
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(sess.ExpiresAt)}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.c.Secret)
	if err != nil {
		return LoginResult{}, fmt.Errorf("sign session: %w", err)
	}
	return LoginResult{User: u, Session: sess, Token: tok, CSRFToken: s.CSRFToken(sess.ID)}, nil
}

// Authenticate checks a session JWT, that its session is still open and
// that its user is not disabled. A token validated in the last
// SessionCacheTTL is not read from the store again (see sessionCache), so
// the user returned may be that old: read it again for anything that
// needs its current row (the password hash, the usage counters).
func (s *Service) Authenticate(ctx context.Context, token string) (store.User, store.Session, error) {
	e, gen, ok := s.sessions.get(token)
	if !ok {
		var err error
		if e, err = s.validate(ctx, token); err != nil {
			return store.User{}, store.Session{}, err
		}
		s.sessions.put(token, gen, e)
	}
	if !s.c.Now().Before(e.expires) {
		return store.User{}, store.Session{}, ErrUnauthenticated
	}
	return e.user, e.sess, nil
}

// validate is Authenticate against the store.
func (s *Service) validate(ctx context.Context, token string) (cachedSession, error) {
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return s.c.Secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer("vmd"), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(s.c.Now))
	if err != nil || claims.ID == "" {
		return cachedSession{}, ErrUnauthenticated
	}
	sess, err := s.c.Store.GetSession(ctx, claims.ID)
	if errors.Is(err, store.ErrNotFound) {
		return cachedSession{}, ErrUnauthenticated
	}
	if err != nil {
		return cachedSession{}, fmt.Errorf("session %s: %w", claims.ID, err)
	}
	if sess.RevokedAt != nil || !s.c.Now().Before(sess.ExpiresAt) || sess.UserID != claims.Subject {
		return cachedSession{}, ErrUnauthenticated
	}
	u, err := s.c.Store.GetUser(ctx, sess.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return cachedSession{}, ErrUnauthenticated
	}
	if err != nil {
		return cachedSession{}, fmt.Errorf("user %s: %w", sess.UserID, err)
	}
	// A login racing DisableUser may have opened a session after the revocation.
	if u.Disabled {
		return cachedSession{}, ErrUnauthenticated
	}
	// The token's own expiry is whole seconds, so it can come before the session's.
	expires := sess.ExpiresAt
	if exp := claims.ExpiresAt.Time; exp.Before(expires) {
		expires = exp
	}
	return cachedSession{user: u, sess: sess, expires: expires}, nil
}

// Logout ends a session (a browser's, or a CLI bearer token's).
func (s *Service) Logout(ctx context.Context, sessionID string) error {
	if err := s.c.Store.RevokeSession(ctx, sessionID, s.c.Now().UTC()); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	s.endedSessions(sessionID)
	return nil
}

// RevokeSessions ends every open session of a user but exceptID (which may
// be empty), and announces them.
func (s *Service) RevokeSessions(ctx context.Context, userID, exceptID string) error {
	ids, err := s.c.Store.RevokeUserSessions(ctx, userID, exceptID, s.c.Now().UTC())
	if err != nil {
		return fmt.Errorf("end sessions of %s: %w", userID, err)
	}
	s.endedSessions(ids...)
	return nil
}

// ChangePassword replaces the password and ends every other session of the user.
func (s *Service) ChangePassword(ctx context.Context, u store.User, sessionID, current, next string) error {
	hash, err := s.passwordHash(ctx, u.ID)
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	ok, err := s.c.Hasher.Verify(ctx, current, hash)
	if err != nil || !ok {
		return ErrInvalidCredentials
	}
	if err := CheckPassword(next); err != nil {
		return err
	}
	if hash, err = s.c.Hasher.Hash(ctx, next); err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	if err := s.c.Store.SetPasswordHash(ctx, u.ID, hash); err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	return s.RevokeSessions(ctx, u.ID, sessionID)
}

// passwordHash is a user's current password hash, read from the store: the
// user Authenticate returns may be up to SessionCacheTTL old.
func (s *Service) passwordHash(ctx context.Context, userID string) (string, error) {
	u, err := s.c.Store.GetUser(ctx, userID)
	if err != nil {
		return "", err
	}
	return u.PasswordHash, nil
}
