package account

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vmdhq/vmd/pkg/store"
)

// Login throttling. Every attempt is counted before its password is hashed,
// by reserving a slot atomically, so N concurrent attempts cannot all pass a
// check made before any of them was counted; a successful login gives its
// slots back. Limits that refuse (429) are per (account, IP) and per IP:
// they stop one source, and only that source. The per-account count never
// refuses: past failsPerAccount it adds AccountSlowdown to every login of
// that account, so a distributed guesser is slowed while the owner, from an
// address that has not failed, still gets in.
const (
	failWindow        = 15 * time.Minute
	failsPerAccountIP = 5
	failsPerIP        = 30
	failsPerAccount   = 100
)

// throttleRule is one counter a login attempt goes through.
type throttleRule struct {
	key   string
	limit int
	// refuses: over the limit the attempt is refused; otherwise it is only slowed.
	refuses bool
}

func throttleRules(email, ip string) []throttleRule {
	return []throttleRule{
		{"login:acctip:" + email + "|" + ip, failsPerAccountIP, true},
		{"login:ip:" + ip, failsPerIP, true},
		{"login:acct:" + email, failsPerAccount, false},
	}
}

// admitLogin counts one attempt against every rule before any hashing. It
// returns the rules it counted (to refund on success), or a ThrottledError
// after refunding what it had counted.
func (s *Service) admitLogin(ctx context.Context, email, ip string) ([]throttleRule, error) {
	var counted []throttleRule
	slow := false
	for _, r := range throttleRules(email, ip) {
		var ok bool
		var retry time.Duration
		var err error
		if r.refuses {
			ok, retry, err = s.c.Limiter.Reserve(ctx, r.key, r.limit, failWindow)
		} else {
			ok, _, err = s.c.Limiter.Hit(ctx, r.key, r.limit, failWindow)
			slow, ok = !ok, true
		}
		if err != nil {
			s.refund(counted)
			return nil, fmt.Errorf("login throttle: %w", err)
		}
		if !ok {
			s.refund(counted)
			return nil, &ThrottledError{RetryAfter: retry}
		}
		counted = append(counted, r)
	}
	if slow {
		t := time.NewTimer(s.c.AccountSlowdown)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			s.refund(counted)
			return nil, ctx.Err()
		}
	}
	return counted, nil
}

// refund gives back attempts that turned out not to count. It runs on a
// fresh context: a client that hung up must not keep its slots.
func (s *Service) refund(rules []throttleRule) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, r := range rules {
		if err := s.c.Limiter.Refund(ctx, r.key); err != nil {
			s.c.Log.Warn("login throttle refund", "err", err)
		}
	}
}

// LoginResult is a new session.
type LoginResult struct {
	User      store.User
	Session   store.Session
	Token     string // the signed JWT
	CSRFToken string
}

// Login checks a password and opens a session of the given kind. A
// throttled caller gets a ThrottledError before the password is hashed.
// Unverified and disabled accounts are told so only after the right password.
func (s *Service) Login(ctx context.Context, email, password, ip, kind string) (LoginResult, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" || password == "" {
		return LoginResult{}, ErrInvalidCredentials
	}
	counted, err := s.admitLogin(ctx, email, ip)
	if err != nil {
		return LoginResult{}, err
	}
	u, err := s.c.Store.GetUserByEmail(ctx, email)
	hash := u.PasswordHash
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.refund(counted)
			return LoginResult{}, fmt.Errorf("login: %w", err)
		}
		hash = s.dummyHash
	}
	ok, verr := s.c.Hasher.Verify(ctx, password, hash)
	if ctx.Err() != nil {
		// Gone before the hash ran: nothing was learnt, nothing counts.
		s.refund(counted)
		return LoginResult{}, ctx.Err()
	}
	if err != nil || verr != nil || !ok {
		if verr != nil && err == nil {
			s.c.Log.Error("stored password hash unreadable", "user", u.ID, "err", verr)
		}
		return LoginResult{}, ErrInvalidCredentials
	}
	s.refund(counted)
	// The right password also forgets this pair's earlier failures.
	_ = s.c.Limiter.Reset(ctx, counted[0].key)
	if !u.Verified {
		return LoginResult{}, ErrUnverified
	}
	if u.Disabled {
		return LoginResult{}, ErrDisabled
	}
	return s.openSession(ctx, u, kind)
}
