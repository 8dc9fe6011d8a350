package serial

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
)

func TestLastLines(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb\nc\n", 0, "a\nb\nc\n"},
		{"a\nb\nc\n", 10, "a\nb\nc\n"},
		{"", 3, ""},
		{"one", 1, "one"},
		{"a\r\nb\r\n", 1, "b\r\n"},
	}
	for _, tc := range tests {
		if got := string(lastLines([]byte(tc.in), tc.n)); got != tc.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestTail(t *testing.T) {
	dir := t.TempDir()
	var l Logs
	b, off, err := l.Tail(filepath.Join(dir, "missing.log"), 5)
	if err != nil || len(b) != 0 || off != 0 {
		t.Fatalf("missing log: %q %d %v", b, off, err)
	}
	// More than MaxTailBytes: the cut first line is dropped, the count holds.
	var sb strings.Builder
	for sb.Len() <= MaxTailBytes+100 {
		sb.WriteString("0123456789abcdef0123456789abcdef\n")
	}
	sb.WriteString("last line\n")
	p := filepath.Join(dir, "serial.log")
	if err := os.WriteFile(p, []byte(sb.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	b, off, err = l.Tail(p, 2)
	if err != nil || string(b) != "0123456789abcdef0123456789abcdef\nlast line\n" || off != int64(sb.Len()) {
		t.Fatalf("tail 2: %q %d %v", b, off, err)
	}
	b, _, _ = l.Tail(p, 0)
	if len(b) > MaxTailBytes || !strings.HasPrefix(string(b), "0123") {
		t.Fatalf("tail all: %d bytes, starts %q", len(b), b[:8])
	}
}

func TestFollow(t *testing.T) {
	p := filepath.Join(t.TempDir(), "serial.log")
	if err := os.WriteFile(p, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := &Logs{MaxFollowsPerUser: 1, Poll: 5 * time.Millisecond}
	var out testutil.SyncBuffer
	var gone sync.Mutex
	isGone := false
	done := make(chan error, 1)
	release, err := l.Reserve("u1")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer release()
		done <- l.Follow(context.Background(), p, 4, &out, func() error { return nil },
			func(context.Context) bool { gone.Lock(); defer gone.Unlock(); return isGone })
	}()
	if _, err := l.Reserve("u1"); !errors.Is(err, ErrTooManyFollows) {
		t.Fatalf("second follow of u1: %v, want ErrTooManyFollows", err)
	}
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("new line\n")
	testutil.Eventually(t, 5*time.Second, "the new line", func() bool { return out.String() == "new line\n" })
	gone.Lock()
	isGone = true
	gone.Unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end when the vm went")
	}
	testutil.Eventually(t, 5*time.Second, "the follow released", func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.follows["u1"] == 0 })
}
