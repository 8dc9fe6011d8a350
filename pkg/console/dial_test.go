package console

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// listenBacklog0 listens on a unix socket with a backlog of 0 and never
// accepts by itself, as QEMU's VNC socket behaves under concurrent opens.
func listenBacklog0(t *testing.T) (string, int) {
	t.Helper()
	dir, err := os.MkdirTemp("", "vmdd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "vnc.sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	return path, fd
}

// Defect 7: concurrent opens within the cap failed with "resource
// temporarily unavailable" from the VNC socket's full backlog; the dial is
// now retried briefly.
func TestDialRetriesFullBacklog(t *testing.T) {
	path, fd := listenBacklog0(t)
	var d net.Dialer
	// Fill the backlog: the next connect is refused with EAGAIN.
	var held []net.Conn
	for {
		c, err := d.DialContext(context.Background(), "unix", path)
		if errors.Is(err, syscall.EAGAIN) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	var refusals atomic.Int32
	accepted := make(chan struct{})
	dial := func(ctx context.Context) (net.Conn, error) {
		c, err := d.DialContext(ctx, "unix", path)
		if errors.Is(err, syscall.EAGAIN) && refusals.Add(1) == 1 {
			// The guest takes the pending connections, freeing the backlog.
			go func() {
				for range held {
					nfd, _, err := syscall.Accept(fd)
					if err == nil {
						defer syscall.Close(nfd)
					}
				}
				close(accepted)
				<-ctx.Done()
			}()
		}
		return c, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := dialRetry(ctx, 2*time.Second, dial)
	if err != nil {
		t.Fatalf("dial after a full backlog: %v (refused %d times)", err, refusals.Load())
	}
	c.Close()
	<-accepted
	if refusals.Load() < 1 {
		t.Fatal("the backlog was never full: the test proves nothing")
	}
}

// The retry is bounded: a backlog that stays full gives up after the wait.
func TestDialRetryBounded(t *testing.T) {
	calls := 0
	start := time.Now()
	_, err := dialRetry(context.Background(), 100*time.Millisecond, func(context.Context) (net.Conn, error) {
		calls++
		return nil, &net.OpError{Op: "dial", Err: syscall.EAGAIN}
	})
	if !errors.Is(err, syscall.EAGAIN) || calls < 2 || time.Since(start) > time.Second {
		t.Fatalf("err %v after %d calls in %s", err, calls, time.Since(start))
	}
	// Other errors are not retried.
	calls = 0
	if _, err := dialRetry(context.Background(), time.Second, func(context.Context) (net.Conn, error) {
		calls++
		return nil, syscall.ENOENT
	}); !errors.Is(err, syscall.ENOENT) || calls != 1 {
		t.Fatalf("ENOENT: %v after %d calls", err, calls)
	}
}
