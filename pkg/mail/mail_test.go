package mail_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/mail"
	"github.com/vmdhq/vmd/pkg/mail/mailtest"
)

func TestSMTPSenderDelivers(t *testing.T) {
	tests := []struct {
		name       string
		user, pass string // server requires these
		urlAuth    string // what the URL carries
		wantErr    string
	}{
		{name: "no auth"},
		{name: "plain auth", user: "bot", pass: "s3cret", urlAuth: "bot:s3cret@"},
		{name: "wrong password", user: "bot", pass: "s3cret", urlAuth: "bot:nope@", wantErr: "smtp auth"},
		{name: "auth required", user: "bot", pass: "s3cret", wantErr: "smtp send"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := mailtest.Start(t)
			srv.User, srv.Pass = tt.user, tt.pass
			s, err := mail.NewSMTPSender("smtp://"+tt.urlAuth+srv.Addr, "vmd@example.com")
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(context.Background(), mail.Message{To: "ada@example.com", Subject: "Grüße", Body: "line one\nline two token=abc_1"})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if n := len(srv.Messages()); n != 0 {
					t.Fatalf("%d messages delivered despite error", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m := srv.WaitFor(t, "ada@example.com", 2*time.Second)
			if m.From != "vmd@example.com" || !strings.Contains(m.Data, "line one\r\nline two") || m.Token() != "abc_1" {
				t.Fatalf("unexpected message: %+v", m)
			}
			if !strings.Contains(m.Data, "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=") {
				t.Fatalf("subject not encoded: %q", m.Data)
			}
		})
	}
}

func TestNewSMTPSenderRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"http://x:25", "smtp://", "::bad"} {
		if _, err := mail.NewSMTPSender(u, "vmd@example.com"); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
	if _, err := mail.NewSMTPSender("smtp://127.0.0.1:25", ""); err == nil {
		t.Error("empty sender accepted")
	}
}
