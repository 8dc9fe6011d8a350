package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
)

// feedServer answers GET /events from a script: one entry per connection.
type feedServer struct {
	t       *testing.T
	mu      sync.Mutex
	conns   []http.Header // request headers, per connection
	queries []string
	script  []func(w http.ResponseWriter, r *http.Request)
}

func (f *feedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	n := len(f.conns)
	f.conns = append(f.conns, r.Header.Clone())
	f.queries = append(f.queries, r.URL.RawQuery)
	f.mu.Unlock()
	if r.URL.Path != "/api/v1/events" || n >= len(f.script) {
		<-r.Context().Done()
		return
	}
	f.script[n](w, r)
}

func (f *feedServer) header(i int, k string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns[i].Get(k)
}

func sse(w http.ResponseWriter, format string, a ...any) {
	fmt.Fprintf(w, format, a...)
	w.(http.Flusher).Flush()
}

func change(w http.ResponseWriter, id int64, name string, st api.State) {
	sse(w, "id: %d\nevent: vm\ndata: {\"id\":%d,\"vm_id\":\"vm_%s\",\"vm_name\":%q,\"state\":%q,\"desired_state\":\"running\",\"message\":\"\",\"time\":\"2025-06-01T12:00:00Z\"}\n\n",
		id, id, name, name, st)
}

func streamHead(w http.ResponseWriter, id int64) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	sse(w, "retry: 2000\nid: %d\n\n", id)
}

func recv(t *testing.T, ch <-chan api.Change) api.Change {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("change channel closed")
		}
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no change within 5s")
	}
	return api.Change{}
}

// TestEventsResumeAfterDrop cuts the first connection after two changes;
// the stream reconnects with Last-Event-ID and goes on without a gap.
func TestEventsResumeAfterDrop(t *testing.T) {
	f := &feedServer{t: t, script: []func(http.ResponseWriter, *http.Request){
		func(w http.ResponseWriter, r *http.Request) {
			streamHead(w, 5)
			sse(w, ": keepalive\n\n")
			change(w, 6, "web", api.StateProvisioning)
			// a multi-line comment and an unknown event type are skipped
			sse(w, "event: other\ndata: {}\n\n")
			change(w, 7, "web", api.StateStarting)
		},
		func(w http.ResponseWriter, r *http.Request) {
			streamHead(w, 7)
			change(w, 8, "web", api.StateRunning)
			<-r.Context().Done()
		},
	}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c := New(srv.URL, "tok", WithVersion("1.2.3"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := c.OpenEvents(ctx, FromNow, true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		ch := recv(t, s.Changes())
		got = append(got, fmt.Sprintf("%d:%s", ch.ID, ch.State))
	}
	if strings.Join(got, ",") != "6:provisioning,7:starting,8:running" {
		t.Fatalf("changes %v", got)
	}
	// The position moves just after the change is handed over, so it may trail the receive.
	testutil.Eventually(t, 5*time.Second, "last id 8", func() bool { return s.LastID() == 8 })
	checks := []struct {
		conn      int
		key, want string
	}{
		{0, "Last-Event-ID", ""},
		{1, "Last-Event-ID", "7"},
		{0, "Authorization", "Bearer tok"},
		{1, "Authorization", "Bearer tok"},
		{0, "User-Agent", "vmctl/1.2.3"},
		{0, "Accept", "text/event-stream"},
	}
	for _, ck := range checks {
		if got := f.header(ck.conn, ck.key); got != ck.want {
			t.Errorf("connection %d %s = %q, want %q", ck.conn, ck.key, got, ck.want)
		}
	}
	f.mu.Lock()
	if f.queries[0] != "all=true" || f.queries[1] != "after=7&all=true" {
		t.Errorf("queries %v", f.queries)
	}
	f.mu.Unlock()
	cancel()
	for range s.Changes() {
	}
	if !errors.Is(s.Err(), context.Canceled) {
		t.Errorf("err after cancel = %v", s.Err())
	}
}

func TestEventsRefusedAndRetried(t *testing.T) {
	refuse := func(status int, code string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"code":%q,"message":"no"}}`, code)
		}
	}
	t.Run("open refused", func(t *testing.T) {
		srv := httptest.NewServer(&feedServer{t: t, script: []func(http.ResponseWriter, *http.Request){refuse(403, api.CodeForbidden)}})
		t.Cleanup(srv.Close)
		_, err := New(srv.URL, "tok").OpenEvents(t.Context(), 0, true)
		if !HasCode(err, api.CodeForbidden) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("events retries a failing server, then ends on a refusal", func(t *testing.T) {
		f := &feedServer{t: t, script: []func(http.ResponseWriter, *http.Request){
			refuse(503, api.CodeUnavailable),
			func(w http.ResponseWriter, r *http.Request) { streamHead(w, 0); change(w, 1, "db", api.StatePending) },
			refuse(401, api.CodeUnauthenticated),
		}}
		srv := httptest.NewServer(f)
		t.Cleanup(srv.Close)
		ch, errc := New(srv.URL, "tok").Events(t.Context(), 0, false)
		if c := recv(t, ch); c.ID != 1 || c.VMName != "db" {
			t.Fatalf("change %+v", c)
		}
		select {
		case err := <-errc:
			if !HasCode(err, api.CodeUnauthenticated) {
				t.Fatalf("err = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no error after the refusal")
		}
		if _, ok := <-ch; ok {
			t.Fatal("change channel still open")
		}
		if f.header(2, "Last-Event-ID") != "1" || f.queries[0] != "after=0" {
			t.Errorf("resume header %q, first query %q", f.header(2, "Last-Event-ID"), f.queries[0])
		}
	})
}

// Close ends the connection at once, without the caller's context ending:
// a watch that returns early left its stream open before, which a server's
// graceful shutdown then waited on.
func TestEventStreamClose(t *testing.T) {
	gone := make(chan struct{})
	f := &feedServer{t: t, script: []func(http.ResponseWriter, *http.Request){
		func(w http.ResponseWriter, r *http.Request) {
			streamHead(w, 3)
			<-r.Context().Done()
			close(gone)
		},
	}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	s, err := New(srv.URL, "tok").OpenEvents(context.Background(), FromNow, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the server still holds the stream after Close")
	}
	if _, ok := <-s.Changes(); ok {
		t.Fatal("changes still open after Close")
	}
	if err := s.Close(); err != nil { // a second Close is harmless
		t.Fatal(err)
	}
}
