package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// waitLive waits for s's view cache to be in use (on PostgreSQL, for its
// listener to listen), so a test of the cache does not pass by bypassing it.
func waitLive(t *testing.T, s store.Store) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "the view cache to be live", func() bool { return store.ViewCacheLive(s) })
}

// cachedViews reads v1's view and u1's list until both come from the
// cache twice in a row and returns what they read. On PostgreSQL a write's
// own notification arrives after it and voids a first refill.
func cachedViews(t *testing.T, s store.Store) (store.VMView, []store.VMView) {
	t.Helper()
	ctx := context.Background()
	var v store.VMView
	var vs []store.VMView
	read := func() {
		var err error
		if v, err = s.GetVMView(ctx, store.VMKey{ID: "v1"}); err != nil {
			t.Fatal(err)
		}
		if vs, err = s.ListVMViews(ctx, "u1"); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 5*time.Second, "the get and the list to be cached", func() bool {
		read()
		h := store.ViewCacheHits(s)
		read()
		return store.ViewCacheHits(s)-h == 2
	})
	return v, vs
}

// TestViewCacheInvalidation checks that a write through each kind of path
// (exec, a transaction, a statement with RETURNING read by queryRow or by
// query) invalidates the cached get and list at once.
func TestViewCacheInvalidation(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		t.Parallel()
		s := b.Open(t)
		ctx := context.Background()
		addUser(t, s, "u1", bigQuota)
		if err := s.CreateVM(ctx, newVM("v1", "u1", "web", 1, 128, 2)); err != nil {
			t.Fatal(err)
		}
		waitLive(t, s)
		expiry := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		message := func(m string) func(v store.VMView) bool {
			return func(v store.VMView) bool { return v.Message == m }
		}
		cases := []struct {
			name  string
			write func() error
			shows func(v store.VMView) bool // of v1's view, by get and in the list
		}{
			{"exec", func() error {
				return store.Exec(s, `UPDATE vms SET message = $2 WHERE id = $1`, "v1", "by exec")
			}, message("by exec")},
			{"exec method", func() error { return s.SetNode(ctx, "v1", "node-b") },
				func(v store.VMView) bool { return v.Node == "node-b" }},
			{"transaction", func() error { _, err := s.SetState(ctx, "v1", api.StateStopped, "in a tx"); return err },
				message("in a tx")},
			{"queryRow returning", func() error { _, err := s.SetExpiry(ctx, "v1", &expiry); return err },
				func(v store.VMView) bool { return v.ExpiresAt != nil && v.ExpiresAt.Equal(expiry) }},
			{"raw queryRow returning", func() error {
				return store.QueryRow(s, `UPDATE vms SET message = $2 WHERE id = $1 RETURNING id`, "v1", "by queryRow")
			}, message("by queryRow")},
			{"query returning", func() error {
				return store.Query(s, `UPDATE vms SET message = $2 WHERE id = $1 RETURNING id`, "v1", "by query")
			}, message("by query")},
			{"query with", func() error {
				return store.Query(s, `WITH m AS (SELECT CAST($2 AS TEXT) AS msg) UPDATE vms SET message = (SELECT msg FROM m) WHERE id = $1 RETURNING id`,
					"v1", "by with")
			}, message("by with")},
			{"snapshot", func() error {
				return s.CreateSnapshot(ctx, store.Snapshot{VMID: "v1", Name: "s1", SizeGB: 1})
			}, func(v store.VMView) bool { return len(v.Snapshots) == 1 && v.Snapshots[0].Name == "s1" }},
			{"failed write", func() error {
				// Rejected by the database (no such owner): nothing changed,
				// but the cache is refilled all the same.
				if err := store.Exec(s, `UPDATE vms SET owner_id = 'nobody' WHERE id = $1`, "v1"); !errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("the bad update: %v, want ErrNotFound", err)
				}
				return nil
			}, func(v store.VMView) bool { return v.OwnerID == "u1" }},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				v, vs := cachedViews(t, s)
				if c.name != "failed write" && (c.shows(v) || len(vs) != 1 || c.shows(vs[0])) {
					t.Fatalf("the view shows the write before it was made: %+v", v)
				}
				if err := c.write(); err != nil {
					t.Fatal(err)
				}
				h := store.ViewCacheHits(s)
				defer func() {
					if store.ViewCacheHits(s) != h {
						t.Error("a read after the write was answered from the cache")
					}
				}()
				got, err := s.GetVMView(ctx, store.VMKey{ID: "v1"})
				if err != nil {
					t.Fatal(err)
				}
				if !c.shows(got) {
					t.Errorf("get after the write: %+v", got)
				}
				list, err := s.ListVMViews(ctx, "u1")
				if err != nil {
					t.Fatal(err)
				}
				if len(list) != 1 || !c.shows(list[0]) {
					t.Errorf("list after the write: %+v", list)
				}
			})
		}
		// A deleted VM is gone from both at once.
		cachedViews(t, s)
		if err := s.DeleteVM(ctx, "v1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetVMView(ctx, store.VMKey{ID: "v1"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("get of a deleted vm: %v, want ErrNotFound", err)
		}
		if vs, err := s.ListVMViews(ctx, "u1"); err != nil || len(vs) != 0 {
			t.Errorf("list after the delete: %+v, %v", vs, err)
		}
	})
}

// TestViewCacheFillRacesWrite makes a write land between a view's read and
// its caching: what was read then is answered once and not cached.
func TestViewCacheFillRacesWrite(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		t.Parallel()
		s := b.Open(t)
		ctx := context.Background()
		addUser(t, s, "u1", bigQuota)
		if err := s.CreateVM(ctx, newVM("v1", "u1", "web", 1, 128, 2)); err != nil {
			t.Fatal(err)
		}
		waitLive(t, s)
		reads := []struct {
			name string
			read func() (store.VMView, error)
		}{
			{"get", func() (store.VMView, error) { return s.GetVMView(ctx, store.VMKey{ID: "v1"}) }},
			{"get by name", func() (store.VMView, error) {
				return s.GetVMView(ctx, store.VMKey{OwnerID: "u1", Name: "web"})
			}},
			{"list", func() (store.VMView, error) {
				vs, err := s.ListVMViews(ctx, "u1")
				if err != nil {
					return store.VMView{}, err
				}
				if len(vs) != 1 {
					return store.VMView{}, errors.New("list does not hold the one vm")
				}
				return vs[0], nil
			}},
		}
		for _, r := range reads {
			t.Run(r.name, func(t *testing.T) {
				msg := "raced " + r.name
				store.SetViewFillHook(s, func() {
					store.SetViewFillHook(s, nil)
					if _, err := s.SetState(ctx, "v1", api.StateStopped, msg); err != nil {
						t.Error(err)
					}
				})
				defer store.SetViewFillHook(s, nil)
				v, err := r.read()
				if err != nil {
					t.Fatal(err)
				}
				if v.Message == msg {
					t.Fatal("the write landed before the read: the race was not made")
				}
				h := store.ViewCacheHits(s)
				if v, err = r.read(); err != nil {
					t.Fatal(err)
				}
				if v.Message != msg {
					t.Errorf("the read after the write: message %q, want %q (the raced read was cached)", v.Message, msg)
				}
				if store.ViewCacheHits(s) != h {
					t.Error("the read after the write was a cache hit")
				}
			})
		}
	})
}

// TestViewCacheCopies changes what the views returned in place: the next
// (cached) reads must not see it.
func TestViewCacheCopies(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		t.Parallel()
		s := b.Open(t)
		ctx := context.Background()
		addUser(t, s, "u1", bigQuota)
		v1 := newVM("v1", "u1", "web", 1, 128, 2)
		v1.SSHKeys = []string{"ssh-ed25519 AAAA"}
		if err := s.CreateVM(ctx, v1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetGuest(ctx, "v1", true, []string{"10.0.0.2"}, "ready"); err != nil {
			t.Fatal(err)
		}
		at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		if _, err := s.SetExpiry(ctx, "v1", &at); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateSnapshot(ctx, store.Snapshot{VMID: "v1", Name: "s1", SizeGB: 1}); err != nil {
			t.Fatal(err)
		}
		waitLive(t, s)
		spoil := func(v *store.VMView) {
			v.Addresses[0] = "spoilt"
			v.Addresses = append(v.Addresses, "spoilt") // as pkg/vm adds the leases
			v.SSHKeys[0] = "spoilt"
			*v.ExpiresAt = time.Time{}
			v.Snapshots[0].Name = "spoilt"
			if len(v.Events) > 0 {
				v.Events[0].Message = "spoilt"
			}
			v.Message = "spoilt"
		}
		want, wantList := cachedViews(t, s)
		want, wantList = deepCopy(t, want), deepCopy(t, wantList)
		// Until two rounds were cache hits: a late notification (PostgreSQL)
		// may void one.
		for hitRounds, i := 0, 0; hitRounds < 2; i++ {
			if i == 50 {
				t.Fatal("the reads were not cache hits")
			}
			h := store.ViewCacheHits(s)
			v, err := s.GetVMView(ctx, store.VMKey{ID: "v1"})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(v, want) {
				t.Fatalf("get after the answers were changed:\n got %+v\nwant %+v", v, want)
			}
			spoil(&v)
			vs, err := s.ListVMViews(ctx, "u1")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(vs, wantList) {
				t.Fatalf("list after the answers were changed:\n got %+v\nwant %+v", vs, wantList)
			}
			spoil(&vs[0])
			vs[0] = store.VMView{}
			if store.ViewCacheHits(s)-h == 2 {
				hitRounds++
			}
		}
	})
}

// deepCopy copies a view or a list down to its last slice and pointer.
func deepCopy[T any](t *testing.T, v T) T {
	t.Helper()
	var out T
	copyInto(reflect.ValueOf(&out).Elem(), reflect.ValueOf(v))
	return out
}

func copyInto(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		dst.Set(reflect.New(src.Elem().Type()))
		copyInto(dst.Elem(), src.Elem())
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		dst.Set(reflect.MakeSlice(src.Type(), src.Len(), src.Len()))
		for i := 0; i < src.Len(); i++ {
			copyInto(dst.Index(i), src.Index(i))
		}
	case reflect.Struct:
		if src.Type() == reflect.TypeOf(time.Time{}) {
			dst.Set(src)
			return
		}
		for i := 0; i < src.NumField(); i++ {
			copyInto(dst.Field(i), src.Field(i))
		}
	default:
		dst.Set(src)
	}
}

// TestViewCacheAcrossStores opens two stores on one PostgreSQL database, as
// two vmd nodes do: a write through one reaches the other's cache by
// notification, and while the other's listener is gone its cache is
// bypassed, so it never answers what was written over.
func TestViewCacheAcrossStores(t *testing.T) {
	t.Parallel()
	dbURL := storetest.PostgresURL(t)
	ctx := context.Background()
	open := func() store.Store {
		s, err := store.Open(ctx, dbURL, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		return s
	}
	a, b := open(), open()
	addUser(t, a, "u1", bigQuota)
	if err := a.CreateVM(ctx, newVM("v1", "u1", "web", 1, 128, 2)); err != nil {
		t.Fatal(err)
	}
	waitLive(t, a)
	waitLive(t, b)
	setMessage := func(m string) {
		t.Helper()
		if _, err := a.SetState(ctx, "v1", api.StateStopped, m); err != nil {
			t.Fatal(err)
		}
	}
	shows := func(m string) bool {
		v, err := b.GetVMView(ctx, store.VMKey{ID: "v1"})
		if err != nil {
			t.Fatal(err)
		}
		vs, err := b.ListVMViews(ctx, "u1")
		if err != nil {
			t.Fatal(err)
		}
		return v.Message == m && len(vs) == 1 && vs[0].Message == m
	}

	cachedViews(t, b)
	setMessage("from a")
	testutil.Eventually(t, 2*time.Second, "b to see a's write", func() bool { return shows("from a") })

	// Kill b's listener and hold it from reconnecting.
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the stores close
	store.SetListenerHook(b, func() { <-release })
	cachedViews(t, b)
	pid := store.ListenerPID(b)
	if pid == 0 {
		t.Fatal("b's listener has no backend")
	}
	terminate(t, dbURL, pid)
	testutil.Eventually(t, 5*time.Second, "b's cache to be bypassed", func() bool { return !store.ViewCacheLive(b) })
	for _, m := range []string{"down 1", "down 2", "down 3"} {
		setMessage(m)
		for i := 0; i < 2; i++ {
			if !shows(m) {
				t.Fatalf("b answered what a wrote over, its listener gone (want %q)", m)
			}
		}
	}

	// Once it listens again, b caches and sees a's writes again.
	unblock()
	waitLive(t, b)
	cachedViews(t, b)
	setMessage("back")
	testutil.Eventually(t, 2*time.Second, "b to see a's write after reconnecting", func() bool { return shows("back") })
}

// TestViewListenerStops checks that Close ends the listener's goroutine and
// its connection.
func TestViewListenerStops(t *testing.T) {
	t.Parallel()
	dbURL := storetest.PostgresURL(t)
	s, err := store.Open(context.Background(), dbURL, "")
	if err != nil {
		t.Fatal(err)
	}
	waitLive(t, s)
	pid := store.ListenerPID(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !store.ListenerDone(s) {
		t.Error("the listener goroutine still runs after Close")
	}
	testutil.Eventually(t, 5*time.Second, "the listener's backend to end", func() bool { return !backendExists(t, dbURL, pid) })
}

func pgConn(t *testing.T, dbURL string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func terminate(t *testing.T, dbURL string, pid uint32) {
	t.Helper()
	var ok bool
	if err := pgConn(t, dbURL).QueryRow(context.Background(), `SELECT pg_terminate_backend($1)`, int(pid)).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate backend %d: %v %v", pid, ok, err)
	}
}

func backendExists(t *testing.T, dbURL string, pid uint32) bool {
	t.Helper()
	var n int
	if err := pgConn(t, dbURL).QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`,
		int(pid)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func TestPlainSelect(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT 1":                         true,
		"\n\t select id FROM vms":          true,
		"SELECT\nid FROM vms":              true,
		"SELECTED":                         false,
		"UPDATE vms SET x = 1 RETURNING *": false,
		"WITH u AS (DELETE FROM vms RETURNING id) SELECT id FROM u": false,
		"INSERT INTO t SELECT 1":                                    false,
		"":                                                          false,
		"SELECT":                                                    false,
	} {
		if got := store.PlainSelect(q); got != want {
			t.Errorf("PlainSelect(%q) = %v, want %v", q, got, want)
		}
	}
}
