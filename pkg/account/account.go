// Package account holds accounts and sessions: sign-up with e-mail
// verification, Argon2id passwords, login throttling, JWT sessions the
// server can revoke, CSRF tokens bound to the session, and admin changes.
package account

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oklog/ulid/v2"

	"github.com/vmdhq/vmd/pkg/api"
	vmdmail "github.com/vmdhq/vmd/pkg/mail"
	"github.com/vmdhq/vmd/pkg/ratelimit"
	"github.com/vmdhq/vmd/pkg/store"
)

// Errors the API maps to its codes.
var (
	ErrInvalidCredentials = errors.New("invalid e-mail or password")
	ErrUnverified         = errors.New("e-mail address not verified")
	ErrUnauthenticated    = errors.New("not authenticated")
	ErrInvalidToken       = errors.New("invalid or expired token")
	ErrInvalid            = errors.New("invalid")
)

// ThrottledError says a login was refused for too many failures.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed logins; try again in %s", e.RetryAfter.Round(time.Second))
}

// FieldError says which input is wrong.
type FieldError struct{ Field, Message string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Unwrap lets errors.Is(err, ErrInvalid) find every field error.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Session kinds.
const (
	KindBrowser = "browser"
	KindCLI     = "cli"
)

// Login throttling: failures per (account, IP), per IP and per account in a
// window. The per-account limit is high so an attacker cannot lock a user
// out from elsewhere; the (account, IP) pair stops guessing from one place.
const (
	failWindow        = 15 * time.Minute
	failsPerAccountIP = 5
	failsPerIP        = 30
	failsPerAccount   = 100
)

// Config wires a Service.
type Config struct {
	Store        store.Store
	Hasher       *Hasher
	Limiter      ratelimit.Limiter
	Mailer       vmdmail.Sender
	Secret       []byte // signs session JWTs and CSRF tokens
	PublicURL    string // base of the links in e-mails; never taken from a request
	DefaultQuota api.Quota
	BrowserTTL   time.Duration
	CLITTL       time.Duration
	VerifyTTL    time.Duration
	Log          *slog.Logger
	Now          func() time.Time
}

// Service is the account use-cases.
type Service struct {
	c         Config
	dummyHash string // compared against for unknown e-mails, so timing does not tell
}

// New returns a Service, filling unset durations with defaults.
func New(c Config) (*Service, error) {
	if len(c.Secret) < 32 {
		return nil, fmt.Errorf("account: session secret must be at least 32 bytes")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.BrowserTTL == 0 {
		c.BrowserTTL = 12 * time.Hour
	}
	if c.CLITTL == 0 {
		c.CLITTL = 30 * 24 * time.Hour
	}
	if c.VerifyTTL == 0 {
		c.VerifyTTL = 24 * time.Hour
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	h, err := c.Hasher.Hash(context.Background(), "dummy password for timing")
	if err != nil {
		return nil, err
	}
	return &Service{c: c, dummyHash: h}, nil
}

// NormalizeEmail checks an address and returns it lower-case.
func NormalizeEmail(email string) (string, error) {
	email = strings.TrimSpace(email)
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" || len(email) > 254 || !strings.Contains(email[strings.LastIndex(email, "@"):], ".") && !strings.HasSuffix(email, "@localhost") {
		return "", &FieldError{"email", "must be a plain e-mail address such as ada@example.com"}
	}
	return strings.ToLower(email), nil
}

// CheckPassword enforces OWASP's length rules (8 to 256 characters, any kind).
func CheckPassword(pw string) error {
	n := utf8.RuneCountInString(pw)
	if n < 8 {
		return &FieldError{"password", "must be at least 8 characters"}
	}
	if n > 256 {
		return &FieldError{"password", "must be at most 256 characters"}
	}
	return nil
}

func newUserID() string { return "usr_" + strings.ToLower(ulid.Make().String()) }

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func hashToken(t string) string {
	s := sha256.Sum256([]byte(t))
	return hex.EncodeToString(s[:])
}

// Signup creates an unverified account and e-mails a verification link. An
// address already taken gets the same answer and no new account, so sign-up
// does not reveal who has one.
func (s *Service) Signup(ctx context.Context, email, password string) (store.User, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return store.User{}, err
	}
	if err := CheckPassword(password); err != nil {
		return store.User{}, err
	}
	hash, err := s.c.Hasher.Hash(ctx, password)
	if err != nil {
		return store.User{}, fmt.Errorf("signup: %w", err)
	}
	u := store.User{ID: newUserID(), Email: email, PasswordHash: hash, Quota: s.c.DefaultQuota, CreatedAt: s.c.Now().UTC()}
	if err := s.c.Store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			s.c.Log.Info("signup for an existing address ignored")
			return store.User{Email: email}, nil
		}
		return store.User{}, fmt.Errorf("signup: %w", err)
	}
	if err := s.sendVerification(ctx, u); err != nil {
		return store.User{}, err
	}
	return u, nil
}

func (s *Service) sendVerification(ctx context.Context, u store.User) error {
	tok, err := randomToken()
	if err != nil {
		return fmt.Errorf("verification token: %w", err)
	}
	t := store.Token{Hash: hashToken(tok), Kind: "verify", UserID: u.ID, ExpiresAt: s.c.Now().Add(s.c.VerifyTTL).UTC()}
	if err := s.c.Store.CreateToken(ctx, t); err != nil {
		return fmt.Errorf("store verification token: %w", err)
	}
	link := strings.TrimRight(s.c.PublicURL, "/") + "/verify?token=" + tok
	body := fmt.Sprintf("Welcome to vmd.\n\nConfirm your e-mail address by opening this link within %s:\n\n%s\n\n"+
		"Or run: vmctl verify %s\n\nIf you did not sign up, ignore this message.\n", s.c.VerifyTTL, link, tok)
	if err := s.c.Mailer.Send(ctx, vmdmail.Message{To: u.Email, Subject: "Verify your vmd account", Body: body}); err != nil {
		return fmt.Errorf("send verification e-mail: %w", err)
	}
	return nil
}

// Verify consumes a verification token and marks its account verified.
func (s *Service) Verify(ctx context.Context, token string) error {
	if token == "" || len(token) > 128 {
		return ErrInvalidToken
	}
	t, err := s.c.Store.ConsumeToken(ctx, "verify", hashToken(token), s.c.Now().UTC())
	if errors.Is(err, store.ErrNotFound) {
		return ErrInvalidToken
	}
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if err := s.c.Store.SetVerified(ctx, t.UserID); err != nil {
		return fmt.Errorf("verify %s: %w", t.UserID, err)
	}
	return nil
}

// LoginResult is a new session.
type LoginResult struct {
	User      store.User
	Session   store.Session
	Token     string // the signed JWT
	CSRFToken string
}

func (s *Service) throttleKeys(email, ip string) [][2]any {
	return [][2]any{
		{"login:acctip:" + email + "|" + ip, failsPerAccountIP},
		{"login:ip:" + ip, failsPerIP},
		{"login:acct:" + email, failsPerAccount},
	}
}

// Login checks a password and opens a session of the given kind. Failures
// are counted per account and IP; a throttled caller gets a ThrottledError
// before the password is even hashed.
func (s *Service) Login(ctx context.Context, email, password, ip, kind string) (LoginResult, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" || password == "" {
		return LoginResult{}, ErrInvalidCredentials
	}
	keys := s.throttleKeys(email, ip)
	for _, k := range keys {
		ok, retry, err := s.c.Limiter.Peek(ctx, k[0].(string), k[1].(int), failWindow)
		if err != nil {
			return LoginResult{}, fmt.Errorf("login throttle: %w", err)
		}
		if !ok {
			return LoginResult{}, &ThrottledError{RetryAfter: retry}
		}
	}
	u, err := s.c.Store.GetUserByEmail(ctx, email)
	hash := u.PasswordHash
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return LoginResult{}, fmt.Errorf("login: %w", err)
		}
		hash = s.dummyHash
	}
	ok, verr := s.c.Hasher.Verify(ctx, password, hash)
	if err != nil || verr != nil || !ok {
		for _, k := range keys {
			if _, _, herr := s.c.Limiter.Hit(ctx, k[0].(string), k[1].(int), failWindow); herr != nil {
				return LoginResult{}, fmt.Errorf("login throttle: %w", herr)
			}
		}
		if verr != nil && err == nil {
			s.c.Log.Error("stored password hash unreadable", "user", u.ID, "err", verr)
		}
		return LoginResult{}, ErrInvalidCredentials
	}
	_ = s.c.Limiter.Reset(ctx, keys[0][0].(string))
	if !u.Verified {
		return LoginResult{}, ErrUnverified
	}
	return s.openSession(ctx, u, kind)
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

// Authenticate checks a session JWT and that its session is still open.
func (s *Service) Authenticate(ctx context.Context, token string) (store.User, store.Session, error) {
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return s.c.Secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer("vmd"), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(s.c.Now))
	if err != nil || claims.ID == "" {
		return store.User{}, store.Session{}, ErrUnauthenticated
	}
	sess, err := s.c.Store.GetSession(ctx, claims.ID)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, store.Session{}, ErrUnauthenticated
	}
	if err != nil {
		return store.User{}, store.Session{}, fmt.Errorf("session %s: %w", claims.ID, err)
	}
	if sess.RevokedAt != nil || !s.c.Now().Before(sess.ExpiresAt) || sess.UserID != claims.Subject {
		return store.User{}, store.Session{}, ErrUnauthenticated
	}
	u, err := s.c.Store.GetUser(ctx, sess.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, store.Session{}, ErrUnauthenticated
	}
	if err != nil {
		return store.User{}, store.Session{}, fmt.Errorf("user %s: %w", sess.UserID, err)
	}
	return u, sess, nil
}

// Logout ends a session.
func (s *Service) Logout(ctx context.Context, sessionID string) error {
	if err := s.c.Store.RevokeSession(ctx, sessionID, s.c.Now().UTC()); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

// ChangePassword replaces the password and ends every other session of the user.
func (s *Service) ChangePassword(ctx context.Context, u store.User, sessionID, current, next string) error {
	ok, err := s.c.Hasher.Verify(ctx, current, u.PasswordHash)
	if err != nil || !ok {
		return ErrInvalidCredentials
	}
	if err := CheckPassword(next); err != nil {
		return err
	}
	hash, err := s.c.Hasher.Hash(ctx, next)
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	if err := s.c.Store.SetPasswordHash(ctx, u.ID, hash); err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	if err := s.c.Store.RevokeUserSessions(ctx, u.ID, sessionID, s.c.Now().UTC()); err != nil {
		return fmt.Errorf("end other sessions: %w", err)
	}
	return nil
}

// CSRFToken is the double-submit token of a session: an HMAC of its id, so
// it cannot be forged without the secret and dies with the session.
func (s *Service) CSRFToken(sessionID string) string {
	m := hmac.New(sha256.New, s.c.Secret)
	m.Write([]byte("csrf:" + sessionID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CheckCSRF reports whether token is the session's CSRF token.
func (s *Service) CheckCSRF(sessionID, token string) bool {
	return token != "" && hmac.Equal([]byte(token), []byte(s.CSRFToken(sessionID)))
}

// AddUser creates a verified account (the `vmd user add` admin command).
func (s *Service) AddUser(ctx context.Context, email, password string, admin bool) (store.User, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return store.User{}, err
	}
	if err := CheckPassword(password); err != nil {
		return store.User{}, err
	}
	hash, err := s.c.Hasher.Hash(ctx, password)
	if err != nil {
		return store.User{}, fmt.Errorf("add user: %w", err)
	}
	u := store.User{ID: newUserID(), Email: email, PasswordHash: hash, Admin: admin, Verified: true,
		Quota: s.c.DefaultQuota, CreatedAt: s.c.Now().UTC()}
	if err := s.c.Store.CreateUser(ctx, u); err != nil {
		return store.User{}, fmt.Errorf("add user %s: %w", email, err)
	}
	return u, nil
}

// FindUser looks a user up by id or e-mail.
func (s *Service) FindUser(ctx context.Context, ref string) (store.User, error) {
	if strings.HasPrefix(ref, "usr_") {
		return s.c.Store.GetUser(ctx, ref)
	}
	return s.c.Store.GetUserByEmail(ctx, strings.ToLower(ref))
}

// SetQuota changes a user's limits (admin).
func (s *Service) SetQuota(ctx context.Context, ref string, q api.Quota) (store.User, error) {
	if q.VMs < 0 || q.CPUs < 0 || q.MemoryMB < 0 || q.DiskGB < 0 {
		return store.User{}, &FieldError{"quota", "limits must not be negative"}
	}
	u, err := s.FindUser(ctx, ref)
	if err != nil {
		return store.User{}, fmt.Errorf("user %s: %w", ref, err)
	}
	if err := s.c.Store.SetQuota(ctx, u.ID, q); err != nil {
		return store.User{}, fmt.Errorf("set quota of %s: %w", u.Email, err)
	}
	return s.c.Store.GetUser(ctx, u.ID)
}
