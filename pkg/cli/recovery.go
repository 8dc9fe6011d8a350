package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// AccountEmailOptions are the inputs of `vmctl resend-verification` and
// `vmctl password forgot`: a server and an e-mail address.
type AccountEmailOptions struct{ *CredentialOptions }

func (o *AccountEmailOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.Server, "server", "", "vmd server URL (env VMCTL_SERVER; default: the current context's)")
	cmd.Flags().StringVar(&o.Email, "email", "", "account e-mail")
}

// email returns --email, or asks for it on a terminal.
func (o *AccountEmailOptions) email() (string, error) {
	email := strings.TrimSpace(o.Email)
	if email == "" && o.IO.CanPrompt() {
		var err error
		if email, err = o.IO.Prompt("E-mail: "); err != nil {
			return "", err
		}
	}
	if email == "" {
		return "", flagErrorf("--email is required")
	}
	return email, nil
}

// NewCmdResendVerification builds `vmctl resend-verification`.
func NewCmdResendVerification(f *Factory, runF func(context.Context, *AccountEmailOptions) error) *cobra.Command {
	opts := &AccountEmailOptions{credentialOptions(f)}
	cmd := &cobra.Command{
		Use:   "resend-verification --email EMAIL",
		Short: "Send the verification e-mail of an unverified account again",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return resendVerificationRun(cmd.Context(), opts)
		},
	}
	opts.addFlags(cmd)
	return cmd
}

func resendVerificationRun(ctx context.Context, opts *AccountEmailOptions) error {
	server, err := opts.server()
	if err != nil {
		return err
	}
	email, err := opts.email()
	if err != nil {
		return err
	}
	if err := opts.NewClient(server).ResendVerification(ctx, email); err != nil {
		return err
	}
	opts.IO.Infof("If %s has an unverified account, a new verification e-mail is on its way: open its link or run 'vmctl verify TOKEN'.\n", email)
	return nil
}

// NewCmdPassword builds `vmctl password`, the forgot and reset commands.
func NewCmdPassword(f *Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "password", Short: "Recover an account whose password is lost", Args: noArgs}
	cmd.AddCommand(NewCmdPasswordForgot(f, nil), NewCmdPasswordReset(f, nil))
	return cmd
}

// NewCmdPasswordForgot builds `vmctl password forgot`.
func NewCmdPasswordForgot(f *Factory, runF func(context.Context, *AccountEmailOptions) error) *cobra.Command {
	opts := &AccountEmailOptions{credentialOptions(f)}
	cmd := &cobra.Command{
		Use:   "forgot --email EMAIL",
		Short: "E-mail a link (and token) to choose a new password",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return passwordForgotRun(cmd.Context(), opts)
		},
	}
	opts.addFlags(cmd)
	return cmd
}

func passwordForgotRun(ctx context.Context, opts *AccountEmailOptions) error {
	server, err := opts.server()
	if err != nil {
		return err
	}
	email, err := opts.email()
	if err != nil {
		return err
	}
	if err := opts.NewClient(server).ForgotPassword(ctx, email); err != nil {
		return err
	}
	opts.IO.Infof("If %s has an account, a reset e-mail is on its way: open its link or run 'vmctl password reset TOKEN' within an hour.\n", email)
	return nil
}

// PasswordResetOptions are the inputs of `vmctl password reset TOKEN`.
type PasswordResetOptions struct {
	*CredentialOptions
	Token string
}

// NewCmdPasswordReset builds `vmctl password reset TOKEN`.
func NewCmdPasswordReset(f *Factory, runF func(context.Context, *PasswordResetOptions) error) *cobra.Command {
	opts := &PasswordResetOptions{CredentialOptions: credentialOptions(f)}
	cmd := &cobra.Command{
		Use:   "reset TOKEN",
		Short: "Set a new password with the token from the reset e-mail; every session of the account ends",
		Args:  exactArgs(1, "TOKEN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Token = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return passwordResetRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Server, "server", "", "vmd server URL (env VMCTL_SERVER; default: the current context's)")
	cmd.Flags().BoolVar(&opts.PasswordStdin, "password-stdin", false, "read the new password from the first line of stdin")
	return cmd
}

func passwordResetRun(ctx context.Context, opts *PasswordResetOptions) error {
	server, err := opts.server()
	if err != nil {
		return err
	}
	var pw string
	switch {
	case opts.PasswordStdin:
		if pw, err = opts.IO.ReadLine(); err != nil {
			return flagErrorf("--password-stdin: no password on stdin")
		}
	case opts.IO.CanPrompt():
		if pw, err = opts.IO.PromptPassword("New password: "); err != nil {
			return err
		}
		again, err := opts.IO.PromptPassword("New password again: ")
		if err != nil {
			return err
		}
		if again != pw {
			return fmt.Errorf("the passwords do not match")
		}
	default:
		return flagErrorf("--password-stdin is required when not running interactively")
	}
	if err := opts.NewClient(server).ResetPassword(ctx, opts.Token, pw); err != nil {
		return err
	}
	opts.IO.Infof("Password changed and every session of the account ended; run 'vmctl login'.\n")
	return nil
}
