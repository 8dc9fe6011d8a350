package store

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// ViewCacheTTL is how long GetVMView and ListVMViews may answer from
// memory. Within one store every write invalidates the cache at once (the
// write generation below) and on PostgreSQL the other nodes' writes do
// when their notification arrives; the TTL bounds what neither sees: a
// notification not yet noticed lost, or another process on the same SQLite
// file (`vmd user`). It is the session cache's bound (pkg/account).
const ViewCacheTTL = time.Second

const (
	// maxCachedViews and maxCachedLists bound the cache; past either, that
	// half of the cache starts over.
	maxCachedViews = 10000
	maxCachedLists = 1000
	// maxCachedListLen: longer lists are read each time (ListVMViews); a
	// copy of each per request would cost about what the read does.
	maxCachedListLen = 500
)

// viewCache remembers the VM views by the write generation they were read
// at. gen counts the writes that reached the database (countingDB) and,
// on PostgreSQL, the notifications that some node changed a VM, its events
// or its snapshots; an entry is served only while gen is still the one
// its read started at, live is set and it is younger than ttl.
type viewCache struct {
	gen atomic.Uint64
	// live is false while writes elsewhere could go unseen: on PostgreSQL
	// until the store's listener is listening, and whenever it is not.
	// Nothing is served or cached then.
	live atomic.Bool
	ttl  time.Duration

	mu     sync.RWMutex
	filled uint64 // the gen of every entry; a put at a newer gen empties the maps
	gets   map[VMKey]cachedView
	lists  map[string]cachedList

	hits atomic.Uint64 // for tests
	// afterRead, if set, runs between a fill's read and its put (tests).
	afterRead atomic.Pointer[func()]
}

type cachedView struct {
	v     VMView
	until time.Time
}

type cachedList struct {
	vs    []VMView
	until time.Time
}

func newViewCache(ttl time.Duration, live bool) *viewCache {
	c := &viewCache{ttl: ttl, gets: map[VMKey]cachedView{}, lists: map[string]cachedList{}}
	c.live.Store(live)
	return c
}

// begin returns the generation a read starts at and whether the cache may
// be used.
func (c *viewCache) begin() (uint64, bool) {
	g := c.gen.Load()
	return g, c.ttl > 0 && c.live.Load()
}

func (c *viewCache) getView(k VMKey, g uint64) (VMView, bool) {
	c.mu.RLock()
	e, ok := c.gets[k]
	ok = ok && c.filled == g
	c.mu.RUnlock()
	if !ok || !time.Now().Before(e.until) {
		return VMView{}, false
	}
	c.hits.Add(1)
	return cloneView(e.v), true
}

func (c *viewCache) getList(owner string, g uint64) ([]VMView, bool) {
	c.mu.RLock()
	e, ok := c.lists[owner]
	ok = ok && c.filled == g
	c.mu.RUnlock()
	if !ok || !time.Now().Before(e.until) {
		return nil, false
	}
	c.hits.Add(1)
	return cloneViews(e.vs), true
}

// lockFill takes the lock for a put of a read that started at g and
// reports whether it may be cached: nothing was written since and the
// cache is live. The caller unlocks.
func (c *viewCache) lockFill(g uint64) bool {
	if f := c.afterRead.Load(); f != nil {
		(*f)()
	}
	c.mu.Lock()
	if g != c.gen.Load() || !c.live.Load() {
		return false
	}
	if c.filled != g {
		c.filled = g
		clear(c.gets)
		clear(c.lists)
	}
	return true
}

// putView caches v (which it keeps: the caller passes a copy).
func (c *viewCache) putView(k VMKey, g uint64, v VMView) {
	ok := c.lockFill(g)
	defer c.mu.Unlock()
	if !ok {
		return
	}
	if len(c.gets) >= maxCachedViews {
		c.gets = map[VMKey]cachedView{}
	}
	c.gets[k] = cachedView{v: v, until: time.Now().Add(c.ttl)}
}

func (c *viewCache) putList(owner string, g uint64, vs []VMView) {
	ok := c.lockFill(g)
	defer c.mu.Unlock()
	if !ok {
		return
	}
	if len(c.lists) >= maxCachedLists {
		c.lists = map[string]cachedList{}
	}
	c.lists[owner] = cachedList{vs: vs, until: time.Now().Add(c.ttl)}
}

// cloneView copies what a caller could change in place and so corrupt the
// cached view: the slices and the times behind pointers.
func cloneView(v VMView) VMView {
	v.Addresses = slices.Clone(v.Addresses)
	v.SSHKeys = slices.Clone(v.SSHKeys)
	v.HostKeys = slices.Clone(v.HostKeys)
	v.ExpiresAt = cloneTime(v.ExpiresAt)
	v.LastActiveAt = cloneTime(v.LastActiveAt)
	v.Events = slices.Clone(v.Events)
	v.Snapshots = slices.Clone(v.Snapshots)
	return v
}

func cloneViews(vs []VMView) []VMView {
	if vs == nil {
		return nil
	}
	out := make([]VMView, len(vs))
	for i, v := range vs {
		out[i] = cloneView(v)
	}
	return out
}

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

// --- PostgreSQL: the other nodes' writes ---

// viewsChannel is what migration 0013's triggers notify on any change to
// vms, vm_events or snapshots.
const viewsChannel = "vmd_views"

const (
	listenMinBackoff = 50 * time.Millisecond
	listenMaxBackoff = 5 * time.Second
)

// viewListener holds one connection of its own LISTENing on viewsChannel
// and bumps the cache's generation on every notification. The cache is
// live only while it listens: after LISTEN succeeds it bumps (whatever
// was cached before may have missed a notification) and then goes live;
// when the connection fails it goes out of live first, then reconnects
// with backoff.
type viewListener struct {
	cfg    *pgx.ConnConfig
	cache  *viewCache
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	pid uint32 // the listening backend's, 0 while not listening (tests)
	// beforeConnect, if set, runs before each connection attempt (tests).
	beforeConnect atomic.Pointer[func()]
}

func startViewListener(cfg *pgx.ConnConfig, cache *viewCache) *viewListener {
	cfg = cfg.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "vmd views listener"
	ctx, cancel := context.WithCancel(context.Background())
	l := &viewListener{cfg: cfg, cache: cache, cancel: cancel, done: make(chan struct{})}
	go l.run(ctx)
	return l
}

func (l *viewListener) run(ctx context.Context) {
	defer close(l.done)
	backoff := listenMinBackoff
	for {
		if f := l.beforeConnect.Load(); f != nil {
			(*f)()
		}
		if l.listen(ctx) {
			backoff = listenMinBackoff
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, listenMaxBackoff)
	}
}

// listen connects, listens and bumps the generation on each notification
// until the connection fails or ctx ends; it reports whether it listened.
func (l *viewListener) listen(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(cctx, l.cfg)
	if err == nil {
		if _, err = conn.Exec(cctx, "LISTEN "+viewsChannel); err != nil {
			closeConn(conn)
		}
	}
	cancel()
	if err != nil {
		return false
	}
	defer closeConn(conn)
	l.setPID(conn.PgConn().PID())
	l.cache.gen.Add(1)
	l.cache.live.Store(true)
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			break
		}
		l.cache.gen.Add(1)
	}
	l.cache.live.Store(false)
	l.cache.gen.Add(1)
	l.setPID(0)
	return true
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

func (l *viewListener) setPID(pid uint32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pid = pid
}

func (l *viewListener) listeningPID() uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pid
}

// stop ends the listener and waits for it.
func (l *viewListener) stop() {
	l.cancel()
	<-l.done
}
