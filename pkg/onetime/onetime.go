// Package onetime makes the random tokens vmd hands out to be pasted or
// sent back: e-mail verification tokens and console tokens. One generator,
// so every such token has the same strength and the same shape.
package onetime

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// Bytes is the entropy of a token.
const Bytes = 32

// randRead is crypto/rand's Read; tests replace it to force a redraw.
var randRead = rand.Read

// New returns a token of Bytes random bytes in base64url (43 characters)
// that never starts with '-' or '_'. A leading '-' makes a command line
// read the token as a flag (`vmctl verify -Xy…`), which base64url would do
// one time in 64; drawing again costs a bit of entropy (under 0.05 bits)
// and keeps the alphabet every link and regexp already accepts.
func New() (string, error) {
	b := make([]byte, Bytes)
	for {
		if _, err := randRead(b); err != nil {
			return "", fmt.Errorf("random token: %w", err)
		}
		tok := base64.RawURLEncoding.EncodeToString(b)
		if tok[0] != '-' && tok[0] != '_' {
			return tok, nil
		}
	}
}

// Hash is what is stored of a token: its SHA-256 in hex, so a leaked table
// or log does not hand out live tokens.
func Hash(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}
