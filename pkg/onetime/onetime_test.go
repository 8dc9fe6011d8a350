package onetime

import (
	"bytes"
	"encoding/base64"
	"testing"
)

// A token that starts with '-' cannot be given to `vmctl verify TOKEN`
// (cobra reads a flag); base64url starts with '-' or '_' one time in 32, so
// 5000 draws without the rule would almost surely (1 - 10^-68) show one.
func TestNewNeverStartsWithDashOrUnderscore(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 5000; i++ {
		tok, err := New()
		if err != nil {
			t.Fatal(err)
		}
		if tok[0] == '-' || tok[0] == '_' {
			t.Fatalf("draw %d: token %q starts with %q", i, tok, tok[0])
		}
		if b, err := base64.RawURLEncoding.DecodeString(tok); err != nil || len(b) != Bytes {
			t.Fatalf("token %q is not %d bytes of base64url: %v", tok, Bytes, err)
		}
		if seen[tok] {
			t.Fatalf("token %q drawn twice", tok)
		}
		seen[tok] = true
	}
}

// The rule redraws rather than patching the first character.
func TestNewRedrawsLeadingDash(t *testing.T) {
	draws := [][]byte{
		append([]byte{0xF8}, bytes.Repeat([]byte{1}, Bytes-1)...), // base64 index 62: '-'
		append([]byte{0xFC}, bytes.Repeat([]byte{2}, Bytes-1)...), // 63: '_'
		bytes.Repeat([]byte{3}, Bytes),
	}
	n := 0
	randRead = func(b []byte) (int, error) { copy(b, draws[n]); n++; return len(b), nil }
	t.Cleanup(func() { randRead = defaultRead })
	tok, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if want := base64.RawURLEncoding.EncodeToString(draws[2]); tok != want || n != 3 {
		t.Fatalf("got %q after %d draws, want %q after 3", tok, n, want)
	}
}

var defaultRead = randRead

func TestHash(t *testing.T) {
	if h := Hash("abc"); h != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("Hash(abc) = %s", h)
	}
}
