package e2e

import (
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// TestCLIAccountRecovery: the verification e-mail sent again and a lost
// password reset, with vmctl against a real vmd and its e-mail through the
// in-process SMTP server, on both stores.
func TestCLIAccountRecovery(t *testing.T) {
	parallel(t, 1)
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		v := startVMD(t, b)
		c := newCLI(t, v.URL)
		const addr, pw, next = "ida@example.com", "correct horse battery\n", "a brand new secret\n"
		nth := func(n int) string {
			t.Helper()
			testutil.Eventually(t, 10*time.Second, "e-mail to "+addr, func() bool { return mailCount(v, addr) >= n })
			var ms []string
			for _, m := range v.SMTP.Messages() {
				if len(m.To) == 1 && m.To[0] == addr {
					ms = append(ms, m.Token())
				}
			}
			return ms[n-1]
		}

		c.must(0, pw, "signup", "--server", v.URL, "--email", addr, "--password-stdin")
		first := nth(1)
		c.must(0, "", "resend-verification", "--server", v.URL, "--email", addr)
		second := nth(2)
		if second == "" || second == first {
			t.Fatalf("resent token %q (first %q)", second, first)
		}
		c.must(0, "", "verify", "--server", v.URL, second)
		// The same answer for an address without an account.
		c.must(0, "", "resend-verification", "--server", v.URL, "--email", "nobody@example.com")
		c.must(2, "", "resend-verification", "--server", v.URL)

		c.must(0, pw, "login", "--server", v.URL, "--email", addr, "--password-stdin")
		c.must(0, "", "password", "forgot", "--server", v.URL, "--email", addr)
		tok := nth(3)
		c.must(1, "short\n", "password", "reset", tok, "--server", v.URL, "--password-stdin") // too short; the token survives
		c.must(0, next, "password", "reset", tok, "--server", v.URL, "--password-stdin")
		c.must(1, next, "password", "reset", tok, "--server", v.URL, "--password-stdin") // used
		c.must(4, "", "me")                                                              // the session ended with the reset
		c.must(4, pw, "login", "--server", v.URL, "--email", addr, "--password-stdin")
		c.must(0, next, "login", "--server", v.URL, "--email", addr, "--password-stdin")
		c.must(0, "", "me")
	})
}
