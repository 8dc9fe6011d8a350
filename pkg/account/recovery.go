package account

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	vmdmail "github.com/vmdhq/vmd/pkg/mail"
	"github.com/vmdhq/vmd/pkg/onetime"
	"github.com/vmdhq/vmd/pkg/store"
)

// Account recovery and removal: resend the verification e-mail, forgot and
// reset password, delete my account. The e-mail requests answer the same
// whether or not the address has an account, and they send their mail after
// answering, so neither the answer nor its timing tells.

// resetTTL is how long a password-reset link works: short, since whoever
// reads the mailbox can take the account with it.
const resetTTL = time.Hour

// Token kind of password-reset links (store.Token.Kind).
const tokenReset = "reset"

// E-mail requests are counted per address and per IP in a window, so the
// endpoints cannot flood a mailbox nor be used to spam from one place.
const (
	mailWindow     = 15 * time.Minute
	mailsPerEmail  = 3
	mailsPerIP     = 20
	deletePollStep = 500 * time.Millisecond
	deleteWaitMax  = 10 * time.Minute
)

// MailThrottledError says an e-mail request was refused for coming too often.
// It unwraps to a ThrottledError, so the server answers 429 with Retry-After.
type MailThrottledError struct{ T *ThrottledError }

func (e *MailThrottledError) Error() string {
	return fmt.Sprintf("too many e-mail requests; try again in %s", e.T.RetryAfter.Round(time.Second))
}

// Unwrap gives the throttle's retry time to the error mapper.
func (e *MailThrottledError) Unwrap() error { return e.T }

// APICode makes it an api.CodedError.
func (e *MailThrottledError) APICode() string { return api.CodeRateLimited }

// throttleMail counts one e-mail request of (kind, email, ip).
func (s *Service) throttleMail(ctx context.Context, kind, email, ip string) error {
	for _, k := range []struct {
		key   string
		limit int
	}{{"mail:" + kind + ":acct:" + email, mailsPerEmail}, {"mail:" + kind + ":ip:" + ip, mailsPerIP}} {
		ok, retry, err := s.c.Limiter.Hit(ctx, k.key, k.limit, mailWindow)
		if err != nil {
			return fmt.Errorf("%s throttle: %w", kind, err)
		}
		if !ok {
			return &MailThrottledError{&ThrottledError{RetryAfter: retry}}
		}
	}
	return nil
}

// later runs f after the request has been answered, with a context of its own.
func (s *Service) later(ctx context.Context, what string, f func(ctx context.Context) error) {
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := f(ctx); err != nil {
			s.c.Log.Error(what+" failed", "err", err)
		}
	}()
}

// ResendVerification e-mails a new verification link to an unverified
// account. Unknown and already verified addresses get the same answer and
// no e-mail.
func (s *Service) ResendVerification(ctx context.Context, email, ip string) error {
	email, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	if err := s.throttleMail(ctx, "verify", email, ip); err != nil {
		return err
	}
	s.later(ctx, "resend verification", func(ctx context.Context) error {
		u, err := s.c.Store.GetUserByEmail(ctx, email)
		if errors.Is(err, store.ErrNotFound) || err == nil && u.Verified {
			return nil
		}
		if err != nil {
			return fmt.Errorf("resend verification: %w", err)
		}
		return s.sendVerification(ctx, u)
	})
	return nil
}

// ForgotPassword e-mails a password-reset link (single use, valid an hour,
// only its SHA-256 stored) to the account of that address, if there is one.
func (s *Service) ForgotPassword(ctx context.Context, email, ip string) error {
	email, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	if err := s.throttleMail(ctx, tokenReset, email, ip); err != nil {
		return err
	}
	s.later(ctx, "password reset e-mail", func(ctx context.Context) error {
		u, err := s.c.Store.GetUserByEmail(ctx, email)
		if errors.Is(err, store.ErrNotFound) || err == nil && u.Disabled {
			return nil
		}
		if err != nil {
			return fmt.Errorf("password reset: %w", err)
		}
		return s.sendReset(ctx, u)
	})
	return nil
}

func (s *Service) sendReset(ctx context.Context, u store.User) error {
	tok, err := onetime.New()
	if err != nil {
		return fmt.Errorf("reset token: %w", err)
	}
	t := store.Token{Hash: onetime.Hash(tok), Kind: tokenReset, UserID: u.ID, ExpiresAt: s.c.Now().Add(resetTTL).UTC()}
	if err := s.c.Store.CreateToken(ctx, t); err != nil {
		return fmt.Errorf("store reset token: %w", err)
	}
	link := strings.TrimRight(s.c.PublicURL, "/") + "/reset?token=" + tok
	body := fmt.Sprintf("Someone asked to reset the password of your vmd account.\n\n"+
		"Choose a new password by opening this link within %s:\n\n%s\n\n"+
		"Or run: vmctl password reset %s\n\n"+
		"The link works once. If you did not ask for it, ignore this message: your password stays as it is.\n",
		resetTTL, link, tok)
	if err := s.c.Mailer.Send(ctx, vmdmail.Message{To: u.Email, Subject: "Reset your vmd password", Body: body}); err != nil {
		return fmt.Errorf("send reset e-mail: %w", err)
	}
	return nil
}

// ResetPassword sets a new password with a reset token, ends every session
// of the account and voids its other reset links. The password is checked
// before the token is used, so a too-short one does not cost the link. The
// link proves the mailbox, so an unverified account becomes verified.
func (s *Service) ResetPassword(ctx context.Context, token, next string) error {
	if err := CheckPassword(next); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return &FieldError{"new_password", fe.Message}
		}
		return err
	}
	if token == "" || len(token) > 128 {
		return ErrInvalidToken
	}
	t, err := s.c.Store.ConsumeToken(ctx, tokenReset, onetime.Hash(token), s.c.Now().UTC())
	if errors.Is(err, store.ErrNotFound) {
		return ErrInvalidToken
	}
	if err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	hash, err := s.c.Hasher.Hash(ctx, next)
	if err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	if err := s.c.Store.SetPasswordHash(ctx, t.UserID, hash); err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	// Announced, so the account's consoles and event streams close too.
	if err := s.RevokeSessions(ctx, t.UserID, ""); err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	if err := s.c.Store.DeleteUserTokens(ctx, t.UserID, tokenReset); err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	if err := s.c.Store.SetVerified(ctx, t.UserID); err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	return nil
}

// VMRemover deletes every VM of a user through the VM service (stopping
// them, removing their disks); the server passes one to DeleteAccount.
type VMRemover func(ctx context.Context, u store.User) error

// DeleteAccount removes u after checking its password again: it disables
// the account and ends every session (so nothing new starts), has removeVMs delete the VMs, then
// deletes the user once the VMs are gone. It reports done when the account
// is already gone; otherwise the VMs are still being torn down and the user
// record follows them in the background.
func (s *Service) DeleteAccount(ctx context.Context, u store.User, password string, removeVMs VMRemover) (done bool, err error) {
	hash, err := s.passwordHash(ctx, u.ID)
	if err != nil {
		return false, fmt.Errorf("delete account: %w", err)
	}
	ok, verr := s.c.Hasher.Verify(ctx, password, hash)
	if verr != nil || !ok {
		return false, &FieldError{"password", "is not your current password"}
	}
	// No new session while the VMs go: the account is disabled, and its
	// open sessions end (announced, so its consoles and streams close).
	if err := s.c.Store.SetDisabled(ctx, u.ID, true); err != nil {
		return false, fmt.Errorf("delete account: %w", err)
	}
	if err := s.RevokeSessions(ctx, u.ID, ""); err != nil {
		return false, fmt.Errorf("delete account: %w", err)
	}
	if err := removeVMs(ctx, u); err != nil {
		return false, fmt.Errorf("delete account: %w", err)
	}
	err = s.c.Store.DeleteUser(ctx, u.ID)
	if err == nil {
		s.c.Log.Info("account deleted", "user", u.ID)
		return true, nil
	}
	if !errors.Is(err, store.ErrConflict) {
		return false, fmt.Errorf("delete account: %w", err)
	}
	go s.deleteWhenEmpty(context.WithoutCancel(ctx), u.ID)
	return false, nil
}

// deleteWhenEmpty deletes the user once the reconciler has removed its VMs.
// A vmd restart in between leaves the account disabled, without sessions;
// an admin finishes with the VMs and the record.
func (s *Service) deleteWhenEmpty(ctx context.Context, userID string) {
	ctx, cancel := context.WithTimeout(ctx, deleteWaitMax)
	defer cancel()
	tick := time.NewTicker(deletePollStep)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.c.Log.Error("account deletion: VMs still there", "user", userID, "err", ctx.Err())
			return
		case <-tick.C:
		}
		err := s.c.Store.DeleteUser(ctx, userID)
		if err == nil || errors.Is(err, store.ErrNotFound) {
			s.c.Log.Info("account deleted", "user", userID)
			return
		}
		if !errors.Is(err, store.ErrConflict) {
			s.c.Log.Error("account deletion", "user", userID, "err", err)
			return
		}
	}
}
