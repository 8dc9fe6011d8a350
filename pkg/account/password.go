package account

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

const (
	argonKeyLen  = 32
	argonSaltLen = 16
)

// Argon2Params are the Argon2id cost parameters new hashes are made with.
// Verify always uses the parameters recorded in the stored hash, so hashes
// made with other parameters keep verifying.
type Argon2Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

// DefaultArgon2 is OWASP's Password Storage cheat sheet's Argon2id
// (m=19 MiB, t=2, p=1); about 32 ms a hash on this class of machine. vmd
// always hashes with it; tests pass cheaper parameters to NewHasherWith
// (accounttest.Hasher) so that hundreds of sign-ups do not take minutes.
var DefaultArgon2 = Argon2Params{MemoryKiB: 19 * 1024, Time: 2, Threads: 1}

// Hasher hashes and checks passwords with Argon2id. Hashing is bounded by a
// semaphore so a burst of logins cannot take all memory and cores.
type Hasher struct {
	slots  chan struct{}
	params Argon2Params
}

// NewHasher allows at most concurrency hashes at once and hashes with
// DefaultArgon2.
func NewHasher(concurrency int) *Hasher { return NewHasherWith(concurrency, DefaultArgon2) }

// NewHasherWith is NewHasher with other cost parameters; a zero field takes
// DefaultArgon2's value. Argon2 needs at least 8 KiB per thread.
func NewHasherWith(concurrency int, p Argon2Params) *Hasher {
	if concurrency < 1 {
		concurrency = 1
	}
	if p.Time == 0 {
		p.Time = DefaultArgon2.Time
	}
	if p.Threads == 0 {
		p.Threads = DefaultArgon2.Threads
	}
	if p.MemoryKiB == 0 {
		p.MemoryKiB = DefaultArgon2.MemoryKiB
	}
	if p.MemoryKiB < 8*uint32(p.Threads) {
		p.MemoryKiB = 8 * uint32(p.Threads)
	}
	return &Hasher{slots: make(chan struct{}, concurrency), params: p}
}

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.slots }

// Hash returns the PHC string of password with a fresh salt.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	p := h.params
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time,
		p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

var errBadHash = errors.New("malformed password hash")

// Verify reports whether password matches the PHC string encoded, using the
// parameters recorded in it so old hashes keep working after a change.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errBadHash
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 {
		return false, errBadHash
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, errBadHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, errBadHash
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func rawB64(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }

func argonKey(pw, salt string, t, m uint32, p uint8) []byte {
	return argon2.IDKey([]byte(pw), []byte(salt), t, m, p, argonKeyLen)
}
