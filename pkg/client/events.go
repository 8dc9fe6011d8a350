package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
)

// FromNow is the after argument of Events and OpenEvents that starts the
// feed at the newest change; 0 replays the feed from its beginning.
const FromNow int64 = -1

// Reconnection timing of the change feed. The server sends a keepalive
// every 15 s, so a connection silent for eventsIdle is dead.
const (
	eventsBackoffMin = 250 * time.Millisecond
	eventsBackoffMax = 5 * time.Second
	eventsIdle       = 45 * time.Second
	// eventsMaxLine bounds one line of the stream (one change's JSON).
	eventsMaxLine = 1 << 20
)

// EventStream follows the change feed, GET /events. It reconnects after
// network errors and server failures and resumes after the last change it
// delivered (Last-Event-ID), so no change is lost or repeated.
type EventStream struct {
	c       *Client
	hc      *http.Client
	all     bool
	changes chan api.Change

	mu     sync.Mutex
	lastID int64 // -1 until the server names a position
	err    error

	cancel context.CancelFunc // ends the stream's own context (Close)
	done   chan struct{}      // closed when run has returned and its connection is closed
}

// OpenEvents connects to the change feed of the caller's VMs (every user's
// when all is true; admins only) and returns once the server has answered,
// so every change after this call is delivered. after is a change ID to
// resume after, 0 for the whole feed, or FromNow. Errors of this first
// connection are returned as they are (an *APIError for a refusal).
func (c *Client) OpenEvents(ctx context.Context, after int64, all bool) (*EventStream, error) {
	s := c.newEventStream(after, all)
	ctx, s.cancel = context.WithCancel(ctx)
	body, err := s.connect(ctx)
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("open event stream: %w", err)
	}
	go func() {
		defer close(s.done)
		s.run(ctx, body)
	}()
	return s, nil
}

// Close ends the stream and returns once its connection is closed, so a
// caller that stops reading early leaves nothing behind (a server's
// graceful shutdown would otherwise wait on the open stream). Changes is
// closed by then; Close may be called more than once.
func (s *EventStream) Close() error {
	s.cancel()
	<-s.done
	return nil
}

// Events follows the change feed like OpenEvents but connects in the
// background, retrying until the server answers. The change channel is
// closed when ctx ends or the server refuses the stream (unauthenticated,
// forbidden); the refusal is then sent on the error channel, which is closed
// after the change channel.
func (c *Client) Events(ctx context.Context, after int64, all bool) (<-chan api.Change, <-chan error) {
	s := c.newEventStream(after, all)
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		s.run(ctx, nil)
		if err := s.Err(); err != nil && ctx.Err() == nil {
			errc <- err
		}
	}()
	return s.changes, errc
}

func (c *Client) newEventStream(after int64, all bool) *EventStream {
	hc := *c.rc.GetClient()
	// A stream is long-lived: the per-request timeout would cut it off.
	hc.Timeout = 0
	if after < 0 {
		after = FromNow
	}
	return &EventStream{c: c, hc: &hc, all: all, changes: make(chan api.Change), lastID: after,
		cancel: func() {}, done: make(chan struct{})}
}

// Changes delivers changes in order. It is closed when the stream ends; Err says why.
func (s *EventStream) Changes() <-chan api.Change { return s.changes }

// Err is why the stream ended: the context's error or the server's refusal.
func (s *EventStream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// LastID is the position in the feed: the ID of the last change delivered,
// or where the server started the stream.
func (s *EventStream) LastID() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastID
}

// connect opens one connection; the position to resume from is the last
// one the server named, else what the caller asked for.
func (s *EventStream) connect(ctx context.Context) (io.ReadCloser, error) {
	q := url.Values{}
	if s.all {
		q.Set("all", "true")
	}
	last := s.LastID()
	if last >= 0 {
		q.Set("after", strconv.FormatInt(last, 10))
	}
	u := BaseURL(s.c.server) + "/events"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("User-Agent", s.c.rc.Header.Get("User-Agent"))
	if s.c.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.c.token)
	}
	if last >= 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(last, 10))
	}
	res, err := s.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		defer res.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		return nil, newAPIError(res.StatusCode, res.Header.Get("X-Request-Id"), body)
	}
	return res.Body, nil
}

// retryable reports whether a failed connection is worth another try:
// anything but a refusal of the request itself.
func retryable(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status >= 500 || ae.Status == http.StatusTooManyRequests || ae.Status == http.StatusRequestTimeout
	}
	return true
}

// run reads connections until ctx ends or the server refuses; body is an
// already open first connection or nil.
func (s *EventStream) run(ctx context.Context, body io.ReadCloser) {
	defer close(s.changes)
	backoff := eventsBackoffMin
	for {
		if body == nil {
			var err error
			body, err = s.connect(ctx)
			if err != nil {
				if ctx.Err() != nil {
					s.setErr(ctx.Err())
					return
				}
				if !retryable(err) {
					s.setErr(fmt.Errorf("event stream: %w", err))
					return
				}
				select {
				case <-ctx.Done():
					s.setErr(ctx.Err())
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, eventsBackoffMax)
				continue
			}
		}
		if s.read(ctx, body) {
			backoff = eventsBackoffMin
		}
		body = nil
		if ctx.Err() != nil {
			s.setErr(ctx.Err())
			return
		}
		select {
		case <-ctx.Done():
			s.setErr(ctx.Err())
			return
		case <-time.After(backoff):
		}
	}
}

func (s *EventStream) setErr(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

// read parses one connection's events until it ends, and reports whether
// it got as far as the server's first message.
func (s *EventStream) read(ctx context.Context, body io.ReadCloser) (ok bool) {
	defer body.Close()
	// A silent connection (no keepalive either) is closed, which ends the scan.
	idle := time.AfterFunc(eventsIdle, func() { _ = body.Close() })
	defer idle.Stop()
	stop := context.AfterFunc(ctx, func() { _ = body.Close() })
	defer stop()

	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 4096), eventsMaxLine)
	var (
		id, event string
		data      []string
		hasID     bool
	)
	for sc.Scan() {
		idle.Reset(eventsIdle)
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line != "" {
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				id, hasID = value, true
			case "event":
				event = value
			case "data":
				data = append(data, value)
			}
			continue
		}
		// A blank line ends an event.
		if hasID {
			if n, err := strconv.ParseInt(id, 10, 64); err == nil && n >= 0 {
				ok = true
				if len(data) == 0 {
					s.mu.Lock()
					s.lastID = n
					s.mu.Unlock()
				}
			}
		}
		if len(data) > 0 && (event == api.EventTypeVM || event == "") {
			var ch api.Change
			if err := json.Unmarshal([]byte(strings.Join(data, "\n")), &ch); err == nil {
				select {
				case s.changes <- ch:
				case <-ctx.Done():
					return ok
				}
				// The position moves only once the change is handed over.
				s.mu.Lock()
				s.lastID = ch.ID
				s.mu.Unlock()
			}
		}
		id, event, data, hasID = "", "", nil, false
	}
	return ok
}
