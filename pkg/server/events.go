package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/api"
)

// Timing of GET /events. Changes come from the one vm.Feed poller;
// keepalives stop proxies from closing a quiet stream.
const (
	eventsKeepalive = 15 * time.Second
	// eventsRetryMS is what EventSource waits before reconnecting.
	eventsRetryMS = 2000
)

// events streams the caller's change feed (every VM's with ?all=true, for
// admins) as Server-Sent Events. It starts after the Last-Event-ID header,
// else after ?after=N, else at the newest change; the first thing sent is
// that position as a bare "id:", so a client that reconnects resumes there
// even when nothing happened in between. The stream belongs to the caller's
// session: ending the session ends it.
func (s *Server) events(c echo.Context) error {
	u := caller(c)
	all := false
	if v := c.QueryParam("all"); v != "" {
		var err error
		if all, err = strconv.ParseBool(v); err != nil {
			return errBadRequest("all must be true or false")
		}
	}
	after, err := eventsStart(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(c.Request().Context())
	defer cancel()
	sub, err := s.feed.Subscribe(ctx, u, all, after)
	if err != nil {
		return err
	}
	defer sub.Close()
	defer s.sessions.Add(callerSession(c).ID, u.ID, cancel)()

	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set(echo.HeaderCacheControl, "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx would otherwise hold events back
	c.Response().WriteHeader(http.StatusOK)
	w := &sseWriter{c: c}
	w.printf("retry: %d\nid: %d\n\n", eventsRetryMS, sub.Start())
	w.flush()

	go func() { // vmd is shutting down; the client resumes elsewhere or later
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	keepalive := time.NewTicker(eventsKeepalive)
	defer keepalive.Stop()
	for w.err == nil {
		cs, err := sub.Next(ctx, keepalive.C)
		if err != nil {
			if ctx.Err() == nil {
				// Headers are out: end the stream; the client resumes.
				s.log.Warn("events: list changes", "user", u.ID, "after", sub.Start(), "err", err)
			}
			return nil
		}
		if cs == nil {
			w.printf(": keepalive\n\n")
			w.flush()
			continue
		}
		for _, ch := range cs {
			data, err := json.Marshal(ch.ToAPI())
			if err != nil {
				return fmt.Errorf("encode change %d: %w", ch.ID, err)
			}
			w.printf("id: %d\nevent: %s\ndata: %s\n\n", ch.ID, api.EventTypeVM, data)
		}
		w.flush()
	}
	return nil
}

// eventsStart reads where a stream resumes: -1 for "from now".
func eventsStart(c echo.Context) (int64, error) {
	if v := strings.TrimSpace(c.Request().Header.Get("Last-Event-ID")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, errBadRequest("Last-Event-ID must be a change id (a non-negative integer)")
		}
		return n, nil
	}
	if v := c.QueryParam("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, errBadRequest("after must be a change id (a non-negative integer)")
		}
		return n, nil
	}
	return -1, nil
}

// sseWriter keeps the first write error, which means the client is gone.
type sseWriter struct {
	c   echo.Context
	err error
}

func (w *sseWriter) printf(format string, a ...any) {
	if w.err == nil {
		_, w.err = fmt.Fprintf(w.c.Response(), format, a...)
	}
}

func (w *sseWriter) flush() {
	if w.err == nil {
		w.err = http.NewResponseController(w.c.Response()).Flush()
	}
}
