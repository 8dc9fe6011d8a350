package sshkey

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// newKey returns a fresh public key in "TYPE BASE64" form.
func newKey(t testing.TB) (string, ssh.PublicKey) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(p))), p
}

func newECDSA(t testing.TB) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ssh.NewPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(p)))
}

func TestParse(t *testing.T) {
	key, pub := newKey(t)
	other, _ := newKey(t)
	ec := newECDSA(t)
	fp := ssh.FingerprintSHA256(pub)
	tests := []struct {
		name, in     string
		wantErr      string // substring; "" for success
		wantComment  string
		wantAuthLine string
	}{
		{name: "plain", in: key, wantAuthLine: key},
		{name: "comment", in: key + " ada@laptop", wantComment: "ada@laptop", wantAuthLine: key},
		{name: "spaces around", in: "  " + key + " ada \n", wantComment: "ada", wantAuthLine: key},
		{name: "ecdsa", in: ec, wantAuthLine: ec},
		{name: "unsafe comment dropped", in: key + " a\"b", wantAuthLine: key},
		{name: "non-utf8 comment dropped", in: key + " \xff\xfe", wantAuthLine: key},
		{name: "empty", in: "  ", wantErr: "empty"},
		{name: "garbage", in: "hello world", wantErr: "authorized_keys form"},
		{name: "bad base64", in: "ssh-ed25519 AAAA!!!!", wantErr: "authorized_keys form"},
		{name: "command option", in: `command="/bin/evil" ` + key, wantErr: "options"},
		{name: "from option", in: `from="10.0.0.1",no-pty ` + key, wantErr: "options"},
		{name: "two keys two lines", in: key + "\n" + other, wantErr: "one key"},
		{name: "two keys one line", in: key + " c " + other, wantAuthLine: key, wantComment: "c " + other},
		{name: "too long", in: key + " " + strings.Repeat("x", MaxKeyBytes), wantErr: "longer than"},
		{name: "private key", in: "-----BEGIN OPENSSH PRIVATE KEY-----", wantErr: "authorized_keys form"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%.40q) = %v, want ErrInvalid with %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if k.Authorized != tc.wantAuthLine || k.Comment != tc.wantComment {
				t.Errorf("got %q comment %q, want %q comment %q", k.Authorized, k.Comment, tc.wantAuthLine, tc.wantComment)
			}
			if !strings.HasPrefix(k.Fingerprint, "SHA256:") {
				t.Errorf("fingerprint %q", k.Fingerprint)
			}
		})
	}
	k, err := Parse(key + " x")
	if err != nil || k.Fingerprint != fp || k.Type != ssh.KeyAlgoED25519 || k.Line() != key+" x" {
		t.Errorf("Parse = %+v, %v; want fingerprint %s", k, err, fp)
	}
}

func TestParseRefusesCertificate(t *testing.T) {
	_, pub := newKey(t)
	_, caPriv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(caPriv)
	if err != nil {
		t.Fatal(err)
	}
	cert := &ssh.Certificate{Key: pub, CertType: ssh.UserCert, ValidPrincipals: []string{"ada"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, signer); err != nil {
		t.Fatal(err)
	}
	line := string(ssh.MarshalAuthorizedKey(cert))
	if _, err := Parse(line); err == nil || !strings.Contains(err.Error(), "certificates") {
		t.Fatalf("Parse(cert) = %v, want a refusal", err)
	}
	if got := hostKey(strings.TrimSpace(line)); got != "" {
		t.Fatalf("hostKey(cert) = %q, want refused", got)
	}
}

func TestHostKeys(t *testing.T) {
	a, _ := newKey(t)
	b := newECDSA(t)
	c, _ := newKey(t)
	typeA, blobA, _ := strings.Cut(a, " ")
	many := &strings.Builder{}
	for range 10000 {
		k, _ := newKeyFast()
		fmt.Fprintf(many, "vmd-tiny: hostkey %s\n", k)
	}
	tests := []struct {
		name      string
		log       string
		want      []string
		wantFound bool
	}{
		{name: "nothing", log: "SeaBIOS\nvmd-tiny: booted\n"},
		{name: "tiny", log: "vmd-tiny: booted\n\nvmd-tiny: hostkey " + a + "\n\nvmd-tiny: hostkey " + b + "\r\nvmd-tiny: hostkeys done\n",
			want: []string{a, b}, wantFound: true},
		// Each key is a line of its own, seconds apart under load: what is there so far, not complete.
		{name: "tiny, first key line only", log: "vmd-tiny: booted\nvmd-tiny: hostkey " + a + "\n", want: []string{a}},
		{name: "tiny, done without keys", log: "vmd-tiny: booted\nvmd-tiny: hostkeys done\n", wantFound: true},
		{name: "tiny with console noise before", log: "\x1b[0m[  1.2] x vmd-tiny: hostkey " + a + " root@x\n\x1b[0mvmd-tiny: hostkeys done\n", want: []string{a}, wantFound: true},
		{name: "cloud-init", log: "boot\n" + ciBegin + "\n" + b + " root@debian\n" + a + " root@debian\n" + ciEnd + "\nlogin:",
			want: []string{b, a}, wantFound: true},
		{name: "cloud-init unterminated", log: ciBegin + "\n" + a + "\n"},
		{name: "reboot replaces", log: "vmd-tiny: booted\nvmd-tiny: hostkey " + a + "\nvmd-tiny: hostkeys done\nvmd-tiny: booted\nvmd-tiny: hostkey " + c + "\nvmd-tiny: hostkeys done\n",
			want: []string{c}, wantFound: true},
		{name: "reboot not done yet", log: "vmd-tiny: booted\nvmd-tiny: hostkey " + a + "\nvmd-tiny: hostkeys done\nvmd-tiny: booted\nvmd-tiny: hostkey " + c + "\n",
			want: []string{c}},
		{name: "second block replaces", log: ciBegin + "\n" + a + "\n" + ciEnd + "\n" + ciBegin + "\n" + c + "\n" + ciEnd + "\n",
			want: []string{c}, wantFound: true},
		{name: "duplicates once", log: "vmd-tiny: hostkey " + a + "\nvmd-tiny: hostkey " + a + "\n", want: []string{a}},
		{name: "type mismatch", log: "vmd-tiny: hostkey ssh-rsa " + blobA + "\n"},
		{name: "bad base64", log: "vmd-tiny: hostkey " + typeA + " %%%%\n"},
		{name: "options and command", log: "vmd-tiny: hostkey command=\"rm -rf /\" " + a + "\n" + ciBegin + "\n" +
			`command="x",no-pty ` + a + "\n@cert-authority * " + a + "\n" + ciEnd + "\n", wantFound: true},
		{name: "comment stripped, injection after key ignored", log: "vmd-tiny: hostkey " + a + " x\nevil.example ssh-rsa AAAA\n",
			want: []string{a}},
		{name: "huge line skipped, then a key", log: "vmd-tiny: hostkey " + a + strings.Repeat("A", 3*MaxHostKeyLine) +
			"vmd-tiny: hostkey " + c + "\nvmd-tiny: hostkey " + b + "\n", want: []string{b}},
		{name: "non-utf8", log: "\xff\xfe\x00vmd-tiny: hostkey " + a + " \xff\n\x80\x81\n", want: []string{a}},
		{name: "endless block given up", log: ciBegin + "\n" + strings.Repeat("noise\n", maxBlockLines+1) + a + "\n" + ciEnd + "\n"},
		{name: "10000 fake keys capped", log: many.String()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, found := HostKeys(strings.NewReader(tc.log))
			if found != tc.wantFound {
				t.Errorf("found = %v, want %v", found, tc.wantFound)
			}
			if tc.name == "10000 fake keys capped" {
				if len(got) != MaxHostKeys {
					t.Fatalf("kept %d keys, want the cap %d", len(got), MaxHostKeys)
				}
				return
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("HostKeys =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestHostKeysReadsBounded(t *testing.T) {
	a, _ := newKey(t)
	// A key past MaxSerialRead is never read.
	log := strings.Repeat("x\n", MaxSerialRead/2+1) + "vmd-tiny: hostkey " + a + "\n"
	if got, found := HostKeys(strings.NewReader(log)); found || got != nil {
		t.Fatalf("HostKeys read past its cap: %q %v", got, found)
	}
}

// newKeyFast makes a distinct valid-looking ed25519 key without a
// random source per call: 10,000 of them in a test.
var fastN uint32

func newKeyFast() (string, error) {
	fastN++
	var b [32]byte
	b[0], b[1], b[2], b[3] = byte(fastN), byte(fastN>>8), byte(fastN>>16), 1
	p, err := ssh.NewPublicKey(ed25519.PublicKey(b[:]))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(p))), nil
}
