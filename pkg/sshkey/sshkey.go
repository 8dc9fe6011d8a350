// Package sshkey is the one place SSH public keys are read: a user's
// authorized key (API, vmctl) and the host keys a guest prints on its
// serial console. It wraps golang.org/x/crypto/ssh, so no key is ever
// parsed by hand, and everything it returns is re-marshalled from the
// parsed key: a caller never passes on the bytes it was given.
package sshkey

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// MaxKeyBytes bounds one authorized-key line. An RSA 16384-bit key is about
// 2.8 KB in authorized_keys form; 8 KiB leaves room for a long comment.
const MaxKeyBytes = 8 << 10

// MaxCommentBytes bounds the comment kept with a key.
const MaxCommentBytes = 256

// Key is a parsed public key.
type Key struct {
	// Authorized is "TYPE BASE64" without comment or options: what goes
	// into a seed's public-keys and a known_hosts line.
	Authorized string
	// Comment is the key's comment, printable UTF-8 only ("" if none or unsafe).
	Comment string
	// Fingerprint is OpenSSH's "SHA256:…" form.
	Fingerprint string
	Type        string
}

// Line is the key as authorized_keys shows it: with its comment, if any.
func (k Key) Line() string {
	if k.Comment == "" {
		return k.Authorized
	}
	return k.Authorized + " " + k.Comment
}

// ErrInvalid is wrapped by every refusal of Parse; its text (err.Error())
// is written for users and names no input bytes beyond the key type.
var ErrInvalid = errors.New("invalid ssh public key")

// Parse reads one public key in authorized_keys form ("ssh-ed25519 AAAA…
// comment"). It refuses more than one key, options (command="…",
// from="…": a key given to vmd grants a plain login, nothing else),
// anything over MaxKeyBytes, and certificates.
func Parse(s string) (Key, error) {
	if len(s) > MaxKeyBytes {
		return Key{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxKeyBytes)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return Key{}, fmt.Errorf("%w: empty", ErrInvalid)
	}
	if strings.ContainsAny(s, "\n\r") {
		return Key{}, fmt.Errorf("%w: one key per request (the text has more than one line)", ErrInvalid)
	}
	pub, comment, options, rest, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return Key{}, fmt.Errorf("%w: not in authorized_keys form (TYPE BASE64 [COMMENT])", ErrInvalid)
	}
	if len(options) > 0 {
		return Key{}, fmt.Errorf("%w: options (command=, from=, …) are not accepted", ErrInvalid)
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return Key{}, fmt.Errorf("%w: one key per request", ErrInvalid)
	}
	if _, ok := pub.(*ssh.Certificate); ok {
		return Key{}, fmt.Errorf("%w: certificates are not accepted, give the plain public key", ErrInvalid)
	}
	return fromPublic(pub, comment), nil
}

// fromPublic re-marshals pub; the comment is kept only when it is short,
// printable UTF-8 (it is shown in tables and written to seeds).
func fromPublic(pub ssh.PublicKey, comment string) Key {
	auth := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n")
	return Key{Authorized: auth, Comment: safeComment(comment),
		Fingerprint: ssh.FingerprintSHA256(pub), Type: pub.Type()}
}

func safeComment(c string) string {
	c = strings.TrimSpace(c)
	if c == "" || len(c) > MaxCommentBytes || !utf8.ValidString(c) {
		return ""
	}
	for _, r := range c {
		if r < 0x20 || r == 0x7f || r == '"' || r == '\'' || r == '\\' {
			return ""
		}
	}
	return c
}
