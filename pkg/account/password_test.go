package account

import (
	"context"
	"strings"
	"testing"
)

func TestHasherRoundTrip(t *testing.T) {
	t.Parallel()
	h := NewHasher(2)
	ctx := context.Background()
	enc, err := h.Hash(ctx, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("not OWASP argon2id parameters: %s", enc)
	}
	enc2, _ := h.Hash(ctx, "correct horse battery")
	if enc == enc2 {
		t.Fatal("same hash twice: salt not random")
	}
	tests := []struct {
		name    string
		pw      string
		encoded string
		ok      bool
		wantErr bool
	}{
		{"right", "correct horse battery", enc, true, false},
		{"wrong", "correct horse batterY", enc, false, false},
		{"empty", "", enc, false, false},
		{"other params still verify", "pw", mustHashWith(t, "pw"), true, false},
		{"bcrypt string", "pw", "$2a$10$abcdefghijklmnopqrstuv", false, true},
		{"truncated", "pw", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA", false, true},
		{"bad version", "pw", "$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA", false, true},
		{"zero memory", "pw", "$argon2id$v=19$m=0,t=2,p=1$c2FsdHNhbHQ$aGFzaA", false, true},
		{"bad base64", "pw", "$argon2id$v=19$m=19456,t=2,p=1$!!!$aGFzaA", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := h.Verify(ctx, tt.pw, tt.encoded)
			if ok != tt.ok || (err != nil) != tt.wantErr {
				t.Fatalf("Verify = %v, %v; want %v, err %v", ok, err, tt.ok, tt.wantErr)
			}
		})
	}
}

// mustHashWith makes a hash with weaker parameters, as an older build might have stored.
func mustHashWith(t *testing.T, pw string) string {
	t.Helper()
	return "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0$" + rawB64(argonKey(pw, "saltsaltsalt", 1, 1024, 1))
}

func TestHasherHonoursCancel(t *testing.T) {
	t.Parallel()
	h := NewHasher(1)
	h.slots <- struct{}{} // all slots busy
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Hash(ctx, "pw"); err == nil {
		t.Fatal("hash ran without a free slot")
	}
}

func TestNormalizeEmailAndPassword(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"Ada@Example.COM": "ada@example.com", " bob@x.io ": "bob@x.io", "root@localhost": "root@localhost"} {
		got, err := NormalizeEmail(in)
		if err != nil || got != want {
			t.Errorf("NormalizeEmail(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "ada", "ada@", "Ada <ada@example.com>", "ada@example", strings.Repeat("a", 250) + "@x.io"} {
		if _, err := NormalizeEmail(bad); err == nil {
			t.Errorf("NormalizeEmail(%q) accepted", bad)
		}
	}
	for pw, ok := range map[string]bool{"1234567": false, "12345678": true, "pässwörd": true, strings.Repeat("x", 256): true, strings.Repeat("x", 257): false} {
		if err := CheckPassword(pw); (err == nil) != ok {
			t.Errorf("CheckPassword(%d chars) = %v", len(pw), err)
		}
	}
}

// TestHasherWithParams: other cost parameters are recorded in the hash and
// verify, and NewHasher keeps hashing with DefaultArgon2 (OWASP's).
func TestHasherWithParams(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := NewHasherWith(1, Argon2Params{MemoryKiB: 8, Time: 1, Threads: 1})
	enc, err := h.Hash(ctx, "pw")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=8,t=1,p=1$") {
		t.Fatalf("cheap hash = %s", enc)
	}
	for _, v := range []*Hasher{h, NewHasher(1)} {
		if ok, err := v.Verify(ctx, "pw", enc); !ok || err != nil {
			t.Fatalf("Verify = %v, %v", ok, err)
		}
		if ok, _ := v.Verify(ctx, "pW", enc); ok {
			t.Fatal("wrong password verified")
		}
	}
	if NewHasher(1).params != (Argon2Params{MemoryKiB: 19 * 1024, Time: 2, Threads: 1}) {
		t.Fatalf("default parameters changed: %+v", NewHasher(1).params)
	}
	if got := NewHasherWith(1, Argon2Params{Threads: 4, MemoryKiB: 1}).params; got.MemoryKiB != 32 || got.Time != 2 {
		t.Fatalf("filled parameters = %+v", got)
	}
}
