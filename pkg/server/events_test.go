package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/server"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm"
)

// sseEvent is one dispatched Server-Sent Event, or a bare "id:" (data empty).
type sseEvent struct {
	id    string
	event string
	data  string
}

// sseStream reads GET /events in the background.
type sseStream struct {
	t      *testing.T
	res    *http.Response
	events chan sseEvent
}

// stream opens GET /events with query and headers and checks the stream's head.
func (u *user) stream(query string, hdr map[string]string) *sseStream {
	t := u.e.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", u.e.srv.URL+api.BasePath+"/events"+query, nil)
	req.Header.Set("Authorization", "Bearer "+u.token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := u.client.Do(req)
	if err != nil {
		t.Fatalf("GET /events%s: %v", query, err)
	}
	t.Cleanup(func() { res.Body.Close() })
	s := &sseStream{t: t, res: res, events: make(chan sseEvent, 100)}
	if res.StatusCode != 200 {
		return s
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		seen := false
		for sc.Scan() {
			line := sc.Text()
			if line == "" {
				if seen {
					s.events <- ev
				}
				ev, seen = sseEvent{}, false
				continue
			}
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				ev.id, seen = value, true
			case "event":
				ev.event, seen = value, true
			case "data":
				ev.data, seen = value, true
			}
		}
	}()
	return s
}

// next returns the next event, failing the test after a few seconds.
func (s *sseStream) next() sseEvent {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.t.Fatal("event stream ended")
		}
		return ev
	case <-time.After(5 * time.Second):
		s.t.Fatal("no event within 5s")
	}
	return sseEvent{}
}

// change returns the next event as a change, checking its framing.
func (s *sseStream) change() api.Change {
	s.t.Helper()
	ev := s.next()
	var c api.Change
	if ev.event != api.EventTypeVM || json.Unmarshal([]byte(ev.data), &c) != nil || ev.id != strconv.FormatInt(c.ID, 10) {
		s.t.Fatalf("not a vm change event: %+v", ev)
	}
	return c
}

// quiet checks that no event arrives for a while (longer than the poll).
func (s *sseStream) quiet() {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if ok {
			s.t.Fatalf("unexpected event %+v", ev)
		}
	case <-time.After(time.Second):
	}
}

func changeStr(c api.Change) string {
	return c.VMName + ":" + string(c.State) + "/" + string(c.DesiredState)
}

func TestEventsStream(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		a := e.signup("a@example.com")
		a.mustDo("POST", "/vms", api.CreateVMRequest{Name: "before", Template: "tiny"}, 201, nil)

		s := a.stream("", nil)
		head := s.next()
		if head.event != "" || head.data != "" || head.id == "" {
			t.Fatalf("stream head = %+v, want a bare id", head)
		}
		var created api.VM
		a.mustDo("POST", "/vms", api.CreateVMRequest{Name: "web", Template: "tiny"}, 201, &created)
		a.mustDo("POST", "/vms/web/stop", nil, 202, nil)
		a.mustDo("DELETE", "/vms/web", nil, 202, nil)

		var got []api.Change
		for range 3 {
			got = append(got, s.change())
		}
		var strs []string
		for i, c := range got {
			strs = append(strs, changeStr(c))
			if c.VMID != created.ID || c.Time.IsZero() {
				t.Errorf("change %+v", c)
			}
			if i > 0 && c.ID <= got[i-1].ID {
				t.Errorf("ids not increasing: %d after %d", c.ID, got[i-1].ID)
			}
		}
		// Without Last-Event-ID the stream starts now: "before" is not replayed.
		if want := "web:pending/running,web:pending/stopped,web:deleted/stopped"; strings.Join(strs, ",") != want {
			t.Fatalf("changes = %v, want %s", strs, want)
		}
		if got[2].State != api.StateDeleted {
			t.Errorf("last state %s, want %s", got[2].State, api.StateDeleted)
		}
		if head.id != strconv.FormatInt(got[0].ID-1, 10) {
			t.Errorf("head id %s, first change %d", head.id, got[0].ID)
		}
		s.quiet()

		// The raw JSON uses the contract's names.
		var raw map[string]any
		r := a.stream("?after="+head.id, nil)
		r.next()
		if err := json.Unmarshal([]byte(r.next().data), &raw); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"id", "vm_id", "vm_name", "state", "desired_state", "message", "time"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("change json %v lacks %q", raw, k)
			}
		}
	})
}

func TestEventsResume(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		a := e.signup("a@example.com")
		for _, n := range []string{"one", "two", "three"} {
			a.mustDo("POST", "/vms", api.CreateVMRequest{Name: n, Template: "tiny"}, 201, nil)
		}
		all := a.stream("?after=0", nil)
		if head := all.next(); head.id != "0" {
			t.Fatalf("head of ?after=0 = %+v", head)
		}
		var ids []int64
		for _, want := range []string{"one", "two", "three"} {
			c := all.change()
			if c.VMName != want {
				t.Fatalf("replay got %s, want %s", c.VMName, want)
			}
			ids = append(ids, c.ID)
		}

		cases := []struct {
			name  string
			query string
			hdr   map[string]string
			want  string
		}{
			{"last event id", "", map[string]string{"Last-Event-ID": strconv.FormatInt(ids[0], 10)}, "two"},
			{"header wins over after", "?after=0", map[string]string{"Last-Event-ID": strconv.FormatInt(ids[1], 10)}, "three"},
			{"after", "?after=" + strconv.FormatInt(ids[1], 10), nil, "three"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				s := a.stream(c.query, c.hdr)
				s.next()
				if got := s.change(); got.VMName != c.want {
					t.Fatalf("first change %s, want %s", got.VMName, c.want)
				}
			})
		}

		for _, bad := range []struct{ query, hdr string }{{"?after=x", ""}, {"?after=-1", ""}, {"", "nope"}, {"?all=maybe", ""}} {
			hdr := map[string]string{}
			if bad.hdr != "" {
				hdr["Last-Event-ID"] = bad.hdr
			}
			st, data := a.do("GET", "/events"+bad.query, nil, hdr)
			wantError(t, st, data, 400, api.CodeBadRequest)
		}
		st, data := (&user{e: e, client: e.srv.Client()}).do("GET", "/events", nil, nil)
		wantError(t, st, data, 401, api.CodeUnauthenticated)
	})
}

func TestEventsOwnerIsolation(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		a := e.signup("a@example.com")
		bob := e.signup("b@example.com")
		if _, err := e.accounts.AddUser(t.Context(), "root@example.com", "correct horse battery", true); err != nil {
			t.Fatal(err)
		}
		adm := &user{e: e, client: e.srv.Client()}
		var lr api.LoginResponse
		adm.mustDo("POST", "/auth/login", api.LoginRequest{Email: "root@example.com", Password: "correct horse battery", Client: "cli"}, 200, &lr)
		adm.token = lr.Token

		sa, sb := a.stream("?after=0", nil), bob.stream("?after=0", nil)
		sall, sown := adm.stream("?after=0&all=true", nil), adm.stream("?after=0", nil)
		for _, s := range []*sseStream{sa, sb, sall, sown} {
			s.next()
		}
		a.mustDo("POST", "/vms", api.CreateVMRequest{Name: "secret", Template: "tiny"}, 201, nil)
		a.mustDo("DELETE", "/vms/secret", nil, 202, nil)
		bob.mustDo("POST", "/vms", api.CreateVMRequest{Name: "mine", Template: "tiny"}, 201, nil)

		if c := sb.change(); c.VMName != "mine" {
			t.Fatalf("b saw %s", changeStr(c))
		}
		sb.quiet()
		for _, want := range []string{"secret:pending/running", "secret:deleted/running"} {
			if c := sa.change(); changeStr(c) != want {
				t.Fatalf("a saw %s, want %s", changeStr(c), want)
			}
		}
		sa.quiet()
		for _, want := range []string{"secret:pending/running", "secret:deleted/running", "mine:pending/running"} {
			if c := sall.change(); changeStr(c) != want {
				t.Fatalf("admin (all) saw %s, want %s", changeStr(c), want)
			}
		}
		sown.quiet()

		// Resuming from another owner's id does not reveal that owner's changes.
		st, data := bob.do("GET", "/events?all=true", nil, nil)
		wantError(t, st, data, 403, api.CodeForbidden)
		sb2 := bob.stream("?after=0", nil)
		sb2.next()
		if c := sb2.change(); c.VMName != "mine" {
			t.Fatalf("b's replay saw %s", changeStr(c))
		}
	})
}

// countingStore counts the change-feed queries, by whose changes they read.
type countingStore struct {
	store.Store
	mu            sync.Mutex
	all, perOwner int
}

func (c *countingStore) ListChanges(ctx context.Context, owner string, after int64, limit int) ([]store.Change, error) {
	c.mu.Lock()
	if owner == "" {
		c.all++
	} else {
		c.perOwner++
	}
	c.mu.Unlock()
	return c.Store.ListChanges(ctx, owner, after, limit)
}

func (c *countingStore) counts() (all, perOwner int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.all, c.perOwner
}

// One poller feeds every stream: N open streams cost one query a tick, not N.
func TestEventsOneQueryPerTick(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		var cs *countingStore
		e := newEnvWith(t, b, func(c *server.Config) {
			cs = &countingStore{Store: c.Store}
			c.Feed = vm.NewFeed(vm.FeedConfig{Store: cs, Poll: 20 * time.Millisecond, MaxPerUser: 50})
		})
		alice, bob := e.signup("alice@example.com"), e.signup("bob@example.com")
		var streams []*sseStream
		for i := range 20 {
			u := alice
			if i%2 == 1 {
				u = bob
			}
			s := u.stream("", nil)
			s.next()
			streams = append(streams, s)
		}
		all0, own0 := cs.counts()
		waitUntil(t, "20 ticks of the feed", 10*time.Second, func() bool { all, _ := cs.counts(); return all-all0 >= 20 })
		all, own := cs.counts()
		if all-all0 < 20 || own != own0 {
			t.Fatalf("over 20 ticks with 20 streams: %d shared queries, %d per-stream ones (want 20+, 0)", all-all0, own-own0)
		}
		// Fan-out by owner still holds.
		alice.mustDo("POST", "/vms", api.CreateVMRequest{Name: "web", Template: "tiny"}, 201, nil)
		if c := streams[0].change(); c.VMName != "web" {
			t.Fatalf("alice's stream: %+v", c)
		}
		streams[1].quiet()
	})
}

// Event streams are capped per user (429 rate_limited); a closed stream
// frees its place, and other users are not held back.
func TestEventsCapPerUser(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnvWith(t, b, func(c *server.Config) { c.EventStreamsPerUser = 3 })
		alice, bob := e.signup("alice@example.com"), e.signup("bob@example.com")
		var open []*sseStream
		for range 3 {
			s := alice.stream("", nil)
			s.next()
			open = append(open, s)
		}
		s := alice.stream("", nil)
		if s.res.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("fourth stream: %d, want 429", s.res.StatusCode)
		}
		var body api.ErrorBody
		if err := json.NewDecoder(s.res.Body).Decode(&body); err != nil || body.Error.Code != api.CodeRateLimited {
			t.Fatalf("fourth stream's body: %+v %v", body, err)
		}
		if s := bob.stream("", nil); s.res.StatusCode != 200 {
			t.Fatalf("bob's stream: %d", s.res.StatusCode)
		}
		open[0].res.Body.Close()
		waitUntil(t, "a closed stream frees its place", 5*time.Second, func() bool {
			s := alice.stream("", nil)
			s.res.Body.Close()
			return s.res.StatusCode == 200
		})
	})
}
