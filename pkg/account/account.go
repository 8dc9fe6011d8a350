// Package account holds accounts and sessions: sign-up with e-mail
// verification, Argon2id passwords, login throttling, JWT sessions the
// server can revoke, CSRF tokens bound to the session, and admin changes.
package account

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"

	"github.com/vmdhq/vmd/pkg/api"
	vmdmail "github.com/vmdhq/vmd/pkg/mail"
	"github.com/vmdhq/vmd/pkg/onetime"
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
	ErrDisabled           = errors.New("account disabled")
)

// ThrottledError says a login was refused for too many failures.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed logins; try again in %s", e.RetryAfter.Round(time.Second))
}

// APICode makes it an api.CodedError.
func (e *ThrottledError) APICode() string { return api.CodeRateLimited }

// FieldError says which input is wrong.
type FieldError struct{ Field, Message string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Unwrap lets errors.Is(err, ErrInvalid) find every field error.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// APICode makes it an api.CodedError.
func (e *FieldError) APICode() string { return api.CodeValidation }

// APIField names the field in the error body.
func (e *FieldError) APIField() string { return e.Field }

// Session kinds.
const (
	KindBrowser = "browser"
	KindCLI     = "cli"
)

// Config wires a Service.
type Config struct {
	Store        store.Store
	Hasher       PasswordHasher // NewHasher's in production (DefaultArgon2); tests: accounttest.Hasher
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
	// AccountSlowdown is the delay added to every login of an account that
	// failed more than failsPerAccount times in the window (default 1 s).
	AccountSlowdown time.Duration
	// SessionCacheTTL is how long a validated session is trusted without
	// reading the store again (default DefaultSessionCacheTTL; negative:
	// never). It bounds how late a session ended by another node is refused.
	SessionCacheTTL time.Duration
}

// PasswordHasher hashes and checks passwords; *Hasher is the real one.
type PasswordHasher interface {
	Hash(ctx context.Context, password string) (string, error)
	Verify(ctx context.Context, password, encoded string) (bool, error)
}

// Service is the account use-cases.
type Service struct {
	c         Config
	dummyHash string // compared against for unknown e-mails, so timing does not tell

	sessions *sessionCache

	mu         sync.Mutex
	sessionEnd []func(sessionIDs ...string)
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
	if c.AccountSlowdown == 0 {
		c.AccountSlowdown = time.Second
	}
	if c.SessionCacheTTL == 0 {
		c.SessionCacheTTL = DefaultSessionCacheTTL
	}
	cache := newSessionCache(c.SessionCacheTTL)
	c.Store = cacheClearingStore{Store: c.Store, cache: cache}
	h, err := c.Hasher.Hash(context.Background(), "dummy password for timing")
	if err != nil {
		return nil, err
	}
	return &Service{c: c, dummyHash: h, sessions: cache}, nil
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

// Signup creates an unverified account and e-mails a verification link. An
// address already taken gets the same answer, no new account, and its owner
// a notice instead; both paths hash the password and send one e-mail, so
// neither the answer nor its timing tells who has an account. It returns
// the address as normalised.
func (s *Service) Signup(ctx context.Context, email, password string) (string, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return "", err
	}
	if err := CheckPassword(password); err != nil {
		return "", err
	}
	hash, err := s.c.Hasher.Hash(ctx, password)
	if err != nil {
		return "", fmt.Errorf("signup: %w", err)
	}
	u := store.User{ID: newUserID(), Email: email, PasswordHash: hash, Quota: s.c.DefaultQuota, CreatedAt: s.c.Now().UTC()}
	if err := s.c.Store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			s.c.Log.Info("signup for an existing address: notice sent, nothing created")
			return email, s.sendSignupNotice(ctx, email)
		}
		return "", fmt.Errorf("signup: %w", err)
	}
	return email, s.sendVerification(ctx, u)
}

func (s *Service) sendSignupNotice(ctx context.Context, email string) error {
	body := "Someone, perhaps you, tried to sign up to vmd with this address, which already has an account.\n\n" +
		"If it was you, log in at " + strings.TrimRight(s.c.PublicURL, "/") + "/login with your password.\n" +
		"If it was not, you can ignore this message: nothing was changed.\n"
	if err := s.c.Mailer.Send(ctx, vmdmail.Message{To: email, Subject: "Sign-up attempt for your vmd account", Body: body}); err != nil {
		return fmt.Errorf("send sign-up notice: %w", err)
	}
	return nil
}

func (s *Service) sendVerification(ctx context.Context, u store.User) error {
	tok, err := onetime.New()
	if err != nil {
		return fmt.Errorf("verification token: %w", err)
	}
	t := store.Token{Hash: onetime.Hash(tok), Kind: "verify", UserID: u.ID, ExpiresAt: s.c.Now().Add(s.c.VerifyTTL).UTC()}
	if err := s.c.Store.CreateToken(ctx, t); err != nil {
		return fmt.Errorf("store verification token: %w", err)
	}
	link := strings.TrimRight(s.c.PublicURL, "/") + "/verify?token=" + tok
	body := fmt.Sprintf("Welcome to vmd.\n\nConfirm your e-mail address by opening this link within %s:\n\n%s\n\n"+
		"Or run: vmctl verify -- %s\n\nIf you did not sign up, ignore this message.\n", s.c.VerifyTTL, link, tok)
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
	t, err := s.c.Store.ConsumeToken(ctx, "verify", onetime.Hash(token), s.c.Now().UTC())
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

// ListUsers returns every account (admin).
func (s *Service) ListUsers(ctx context.Context) ([]store.User, error) {
	us, err := s.c.Store.ListUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return us, nil
}

// SetDisabled disables a user (admin): no more logins, and every open
// session ends now (announced to OnSessionEnd). Enabling lets the user log
// in again; ended sessions stay ended.
func (s *Service) SetDisabled(ctx context.Context, ref string, disabled bool) (store.User, error) {
	u, err := s.FindUser(ctx, ref)
	if err != nil {
		return store.User{}, fmt.Errorf("user %s: %w", ref, err)
	}
	if err := s.c.Store.SetDisabled(ctx, u.ID, disabled); err != nil {
		return store.User{}, fmt.Errorf("disable %s: %w", u.Email, err)
	}
	if disabled {
		// After the flag, so a login racing this cannot open a session that outlives it.
		if err := s.RevokeSessions(ctx, u.ID, ""); err != nil {
			return store.User{}, err
		}
	}
	u.Disabled = disabled
	return u, nil
}
