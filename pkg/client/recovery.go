package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/vmdhq/vmd/pkg/api"
)

// ResendVerification asks for a new verification e-mail. The server
// answers the same whether or not the address has an unverified account.
func (c *Client) ResendVerification(ctx context.Context, email string) error {
	if err := c.do(ctx, http.MethodPost, "/auth/verify/resend", nil, api.EmailRequest{Email: email}, nil); err != nil {
		return fmt.Errorf("resend verification to %s: %w", email, err)
	}
	return nil
}

// ForgotPassword asks for a password-reset e-mail. The server answers the
// same whether or not the address has an account.
func (c *Client) ForgotPassword(ctx context.Context, email string) error {
	if err := c.do(ctx, http.MethodPost, "/auth/password/forgot", nil, api.EmailRequest{Email: email}, nil); err != nil {
		return fmt.Errorf("password reset e-mail to %s: %w", email, err)
	}
	return nil
}

// ResetPassword sets a new password with the token of a reset e-mail;
// every session of the account ends.
func (c *Client) ResetPassword(ctx context.Context, token, newPassword string) error {
	err := c.do(ctx, http.MethodPost, "/auth/password/reset", nil,
		api.ResetPasswordRequest{Token: token, NewPassword: newPassword}, nil)
	if err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	return nil
}
