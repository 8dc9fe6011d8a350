package serial

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
)

// fakePort plays QEMU's end of a serial socket.
type fakePort struct {
	dials int
	peer  chan net.Conn
}

func (f *fakePort) dial(context.Context, string) (net.Conn, error) {
	f.dials++
	a, b := net.Pipe()
	f.peer <- b
	return a, nil
}

// readUntil reads r until its output contains want.
func readUntil(t *testing.T, r io.Reader, want string) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		var sb strings.Builder
		buf := make([]byte, 256)
		for !strings.Contains(sb.String(), want) {
			n, err := r.Read(buf)
			sb.Write(buf[:n])
			if err != nil {
				break
			}
		}
		got <- sb.String()
	}()
	select {
	case s := <-got:
		if !strings.Contains(s, want) {
			t.Fatalf("read %q, want %q in it", s, want)
		}
		return s
	case <-time.After(5 * time.Second):
		t.Fatalf("no %q within 5 s", want)
	}
	return ""
}

func TestHub(t *testing.T) {
	f := &fakePort{peer: make(chan net.Conn, 4)}
	hs := &Hubs{Dial: f.dial}
	ctx := context.Background()
	first, err := hs.Attach(ctx, "vm_1", "/x", false)
	if err != nil {
		t.Fatal(err)
	}
	qemu := <-f.peer
	guest := bufio.NewReader(qemu)
	second, err := hs.Attach(ctx, "vm_1", "/x", false)
	if err != nil {
		t.Fatal(err)
	}
	if f.dials != 1 || hs.Watchers("vm_1") != 2 {
		t.Fatalf("dials %d, watchers %d: want one connection for two watchers", f.dials, hs.Watchers("vm_1"))
	}
	if !first.Writer() || second.Writer() {
		t.Fatal("the first attachment must type, the second watch")
	}
	readUntil(t, second, "only watches")

	// Both see the guest; only the writer's keys reach it.
	go qemu.Write([]byte("login: "))
	readUntil(t, first, "login: ")
	readUntil(t, second, "login: ")
	if _, err := second.Write([]byte("dropped\n")); err != nil {
		t.Fatal(err)
	}
	go first.Write([]byte("root\n"))
	if line, _ := guest.ReadString('\n'); line != "root\n" {
		t.Fatalf("guest read %q, want the writer's root", line)
	}

	// An explicit takeover: the third types, the first only watches.
	third, err := hs.Attach(ctx, "vm_1", "/x", true)
	if err != nil {
		t.Fatal(err)
	}
	readUntil(t, first, "took over")
	if first.Writer() || !third.Writer() {
		t.Fatal("takeover did not move typing")
	}
	go third.Write([]byte("ls\n"))
	if line, _ := guest.ReadString('\n'); line != "ls\n" {
		t.Fatalf("guest read %q, want the new writer's ls", line)
	}

	// The writer leaving hands typing to the longest-attached watcher.
	third.Close()
	readUntil(t, first, "types now")
	if !first.Writer() {
		t.Fatal("first was not promoted")
	}

	// The guest going away ends every attachment.
	qemu.Close()
	for _, a := range []*Attachment{first, second} {
		if _, err := io.ReadAll(a); err != nil {
			t.Fatalf("read after the port closed: %v", err)
		}
		if _, err := a.Write([]byte("x")); !errors.Is(err, io.EOF) {
			t.Fatalf("write after the port closed: %v", err)
		}
	}
	testutil.Eventually(t, 5*time.Second, "the hub to go", func() bool { return hs.Watchers("vm_1") == 0 })

	// A new watcher connects again; the last one leaving closes the connection.
	a, err := hs.Attach(ctx, "vm_1", "/x", false)
	if err != nil {
		t.Fatal(err)
	}
	qemu = <-f.peer
	if !a.Writer() {
		t.Fatal("a lone attachment must type")
	}
	a.Close()
	if _, err := qemu.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("qemu side after the last watcher left: %v, want EOF", err)
	}
}

// A watcher that stops reading is dropped rather than stalling the guest.
func TestHubSlowReader(t *testing.T) {
	f := &fakePort{peer: make(chan net.Conn, 1)}
	hs := &Hubs{Dial: f.dial}
	slow, err := hs.Attach(context.Background(), "vm_1", "/x", false)
	if err != nil {
		t.Fatal(err)
	}
	qemu := <-f.peer
	// The guest's writes go on; once the watcher is dropped, it being the
	// last, vmd's connection closes.
	for i := 0; i < outQueue+10; i++ {
		if _, err := qemu.Write([]byte("x")); err != nil {
			if i <= outQueue {
				t.Fatalf("guest write %d failed before the queue was full: %v", i, err)
			}
			break
		}
	}
	if _, err := io.ReadAll(slow); !errors.Is(err, ErrSlow) {
		t.Fatalf("slow reader: %v, want ErrSlow", err)
	}
}
