package sshkey

import (
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// FuzzHostKeys: whatever a guest prints, what comes out is at most
// MaxHostKeys distinct keys, each exactly "TYPE BASE64" of a parseable key.
func FuzzHostKeys(f *testing.F) {
	k, _ := newKeyFast()
	f.Add("vmd-tiny: hostkey " + k + "\n")
	f.Add(ciBegin + "\n" + k + " root@x\n" + ciEnd + "\n")
	f.Add("vmd-tiny: hostkey @cert-authority * " + k + "\n")
	f.Add("\xff\xfe" + ciBegin + "\r\n" + k + "\r\n" + ciEnd)
	f.Fuzz(func(t *testing.T, log string) {
		keys, _ := HostKeys(strings.NewReader(log))
		if len(keys) > MaxHostKeys {
			t.Fatalf("%d keys", len(keys))
		}
		seen := map[string]bool{}
		for _, k := range keys {
			pub, comment, opts, rest, err := ssh.ParseAuthorizedKey([]byte(k))
			if err != nil || comment != "" || len(opts) != 0 || len(rest) != 0 || seen[k] {
				t.Fatalf("key %q: %v comment %q opts %q", k, err, comment, opts)
			}
			if got := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))); got != k {
				t.Fatalf("key %q is not re-marshalled (%q)", k, got)
			}
			seen[k] = true
		}
	})
}

// FuzzParse: an accepted key is one key without options, its Line parses
// back to the same key.
func FuzzParse(f *testing.F) {
	k, _ := newKeyFast()
	f.Add(k + " ada@x")
	f.Add(`command="x" ` + k)
	f.Add(k + "\n" + k)
	f.Fuzz(func(t *testing.T, s string) {
		key, err := Parse(s)
		if err != nil {
			return
		}
		pub, _, opts, rest, err := ssh.ParseAuthorizedKey([]byte(key.Line()))
		if err != nil || len(opts) != 0 || len(strings.TrimSpace(string(rest))) != 0 || strings.ContainsAny(key.Line(), "\n\r") {
			t.Fatalf("accepted %q gives line %q: %v", s, key.Line(), err)
		}
		if ssh.FingerprintSHA256(pub) != key.Fingerprint {
			t.Fatalf("fingerprint mismatch for %q", s)
		}
	})
}
