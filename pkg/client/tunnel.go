package client

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
)

// ServeTunnel accepts connections on l until ctx ends and forwards each over
// a console WebSocket of its own (a console token opens one connection), so
// a native VNC viewer pointed at l sees the VM's screen. onErr, if set, hears
// about connections that could not be forwarded. l is closed on return.
func (c *Client) ServeTunnel(ctx context.Context, l net.Listener, idOrName string, onErr func(remote net.Addr, err error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { <-ctx.Done(); l.Close() }()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		tc, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("tunnel: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer tc.Close()
			ws, err := c.DialConsole(ctx, idOrName)
			if err != nil {
				if ctx.Err() == nil && onErr != nil {
					onErr(tc.RemoteAddr(), err)
				}
				return
			}
			defer ws.Close()
			pipe(ctx, tc, ws)
		}()
	}
}

// pipe copies both ways until one side ends or ctx is done.
func pipe(ctx context.Context, a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		buf := make([]byte, 256<<10)
		_, _ = io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf)
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	left := 2
	select {
	case <-done:
		left--
	case <-ctx.Done():
	}
	a.Close()
	b.Close()
	for ; left > 0; left-- {
		<-done
	}
}
