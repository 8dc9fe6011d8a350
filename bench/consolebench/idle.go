package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/coder/websocket"
)

// idleFrame is what the stand-in sends after its greeting: about one
// 640x480x32 framebuffer, so the proxy's buffers have been used once, as
// with a real guest's first screen, before the session idles.
const idleFrame = 1200 << 10

// idleServe is a VNC stand-in for idle sessions: it greets each connection
// with the RFB version, as QEMU does, sends one screenful and then stays
// silent.
func idleServe(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_, _ = c.Write([]byte("RFB 003.008\n"))
			_, _ = c.Write(make([]byte, idleFrame))
			_, _ = io.Copy(io.Discard, c)
		}()
	}
}

// idleRSS opens n idle console sessions through our proxy (its own
// process) and reports the proxy's RSS growth per session, read from
// /proc/<pid>/statm after the sessions settle.
func idleRSS(n int) error {
	dir, err := os.MkdirTemp("", "consolebench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "vnc.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	defer l.Close()
	go idleServe(l)
	ours, err := startOurs(sock)
	if err != nil {
		return err
	}
	defer stop(ours.cmd)
	pid := ours.cmd.Process.Pid
	open := func() (*websocket.Conn, error) {
		u, err := ours.url()
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{Subprotocols: []string{"binary"}})
		if err != nil {
			return nil, err
		}
		ws.SetReadLimit(16 << 20)
		for got := 0; got < 12+idleFrame; { // the greeting and the screen went all the way through
			_, b, err := ws.Read(ctx)
			if err != nil {
				return nil, err
			}
			got += len(b)
		}
		return ws, nil
	}
	// One session first, so the baseline has the code paths warm.
	warm, err := open()
	if err != nil {
		return fmt.Errorf("first session: %w", err)
	}
	defer warm.CloseNow()
	time.Sleep(time.Second) // let the proxy settle before the baseline (a measurement, not a sync)
	base := rss(pid)
	conns := make([]*websocket.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}()
	for i := 0; i < n; i++ {
		ws, err := open()
		if err != nil {
			return fmt.Errorf("session %d: %w", i+1, err)
		}
		conns = append(conns, ws)
	}
	time.Sleep(2 * time.Second)
	after := rss(pid)
	fmt.Printf("%d idle console sessions: proxy RSS %.1f MB -> %.1f MB, %.3f MB per session\n",
		n, float64(base)/1e6, float64(after)/1e6, float64(after-base)/1e6/float64(n))
	return nil
}
