package cli

import (
	"context"
	"testing"
)

func TestParseRecovery(t *testing.T) {
	type got struct {
		server, email, token string
		stdin                bool
	}
	tests := []struct {
		name    string
		argv    []string
		want    got
		wantErr bool
	}{
		{"resend", []string{"--server", "http://h:1", "--email", "a@b.c"}, got{server: "http://h:1", email: "a@b.c"}, false},
		{"resend with an argument", []string{"a@b.c"}, got{}, true},
		{"forgot", []string{"--email", "a@b.c"}, got{email: "a@b.c"}, false},
		{"reset", []string{"tok", "--password-stdin", "--server", "h:1"}, got{server: "h:1", token: "tok", stdin: true}, false},
		{"reset without token", []string{"--password-stdin"}, got{}, true},
		{"reset two tokens", []string{"a", "b"}, got{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g got
			f := newTestEnv(t).f
			email := func(_ context.Context, o *AccountEmailOptions) error {
				g = got{server: o.Server, email: o.Email}
				return nil
			}
			var err error
			switch tt.name[:5] {
			case "resen":
				err = parse(t, NewCmdResendVerification(f, email), tt.argv...)
			case "forgo":
				err = parse(t, NewCmdPasswordForgot(f, email), tt.argv...)
			default:
				err = parse(t, NewCmdPasswordReset(f, func(_ context.Context, o *PasswordResetOptions) error {
					g = got{server: o.Server, token: o.Token, stdin: o.PasswordStdin}
					return nil
				}), tt.argv...)
			}
			if tt.wantErr {
				if !isFlagError(err) {
					t.Fatalf("err = %v, want FlagError", err)
				}
				return
			}
			if err != nil || g != tt.want {
				t.Fatalf("got %+v, %v; want %+v", g, err, tt.want)
			}
		})
	}
}

// TestRecoveryNeedsEmail: without --email and without a terminal to ask
// on, the e-mail commands stop before calling the server (usage error).
func TestRecoveryNeedsEmail(t *testing.T) {
	for _, run := range []func(context.Context, *AccountEmailOptions) error{resendVerificationRun, passwordForgotRun} {
		f := newTestEnv(t).f
		opts := &AccountEmailOptions{credentialOptions(f)}
		opts.Server = "http://127.0.0.1:1"
		if err := run(context.Background(), opts); !isFlagError(err) || ExitCode(err) != ExitUsage {
			t.Fatalf("err = %v, want a usage error", err)
		}
	}
}
