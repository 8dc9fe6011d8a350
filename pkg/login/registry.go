// Package login keeps what each login session opened on this node (console
// WebSockets, event streams) so that ending the session ends them too:
// logout, a password change and an admin disabling a user call EndSessions
// (or EndUser), and a check on a short interval catches sessions ended on
// another node, or by any other path, within a second.
package login

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/vmdhq/vmd/pkg/store"
)

// ErrEnded: the session was logged out, revoked, has expired or is unknown.
var ErrEnded = errors.New("session ended: log in again")

// Store reads sessions (store.Store has it).
type Store interface {
	GetSession(ctx context.Context, id string) (store.Session, error)
}

// DefaultCheck is how often open things' sessions are re-read, so a session
// ended on another node closes what it opened here within about a second.
const DefaultCheck = time.Second

// Config wires a Registry. Store may be nil: then only EndSessions and
// EndUser end anything, and Alive always holds.
type Config struct {
	Store Store
	Check time.Duration
	Now   func() time.Time
	Log   *slog.Logger
}

// Registry maps session ids to the end functions of what they opened.
type Registry struct {
	cfg Config

	mu      sync.Mutex
	open    map[string]*owned // by session id
	running bool
}

type owned struct {
	userID string
	ends   map[*entry]struct{}
}

type entry struct{ end func() }

// New returns an empty registry.
func New(cfg Config) *Registry {
	if cfg.Check <= 0 {
		cfg.Check = DefaultCheck
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Registry{cfg: cfg, open: map[string]*owned{}}
}

// Alive says whether a session is still open, ErrEnded when not: a console
// token is void once the session that asked for it ended.
func (r *Registry) Alive(ctx context.Context, sessionID string) error {
	if r == nil || r.cfg.Store == nil {
		return nil
	}
	if sessionID == "" {
		return ErrEnded
	}
	s, err := r.cfg.Store.GetSession(ctx, sessionID)
	if errors.Is(err, store.ErrNotFound) {
		return ErrEnded
	}
	if err != nil {
		return err
	}
	if s.RevokedAt != nil || !r.cfg.Now().Before(s.ExpiresAt) {
		return ErrEnded
	}
	return nil
}

// Add records that sessionID (of userID) opened something that end closes;
// the returned function forgets it again (call it when the thing closes on
// its own). end runs at most once, never under the registry's lock. A nil
// registry or an empty session id records nothing.
func (r *Registry) Add(sessionID, userID string, end func()) (forget func()) {
	if r == nil || sessionID == "" {
		return func() {}
	}
	e := &entry{end: end}
	r.mu.Lock()
	o := r.open[sessionID]
	if o == nil {
		o = &owned{userID: userID, ends: map[*entry]struct{}{}}
		r.open[sessionID] = o
	}
	o.ends[e] = struct{}{}
	if !r.running && r.cfg.Store != nil {
		r.running = true
		go r.watch()
	}
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if o := r.open[sessionID]; o != nil {
			delete(o.ends, e)
			if len(o.ends) == 0 {
				delete(r.open, sessionID)
			}
		}
	}
}

// EndSessions closes everything the given sessions opened on this node.
// The daemon connects it to the account service's session-end hook; the
// logout and password-change handlers call it too.
func (r *Registry) EndSessions(ids ...string) {
	if r == nil {
		return
	}
	var ends []func()
	r.mu.Lock()
	for _, id := range ids {
		if o := r.open[id]; o != nil {
			for e := range o.ends {
				ends = append(ends, e.end)
			}
			delete(r.open, id)
		}
	}
	r.mu.Unlock()
	for _, end := range ends {
		end()
	}
}

// EndUser closes what every session of userID but exceptID opened on this
// node (a password change keeps the session that made it).
func (r *Registry) EndUser(userID, exceptID string) {
	if r == nil {
		return
	}
	r.EndSessions(r.sessionsOf(userID, exceptID)...)
}

func (r *Registry) sessionsOf(userID, exceptID string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for id, o := range r.open {
		if o.userID == userID && id != exceptID {
			ids = append(ids, id)
		}
	}
	return ids
}

// Open is the number of things open under a session, for tests and metrics.
func (r *Registry) Open(sessionID string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o := r.open[sessionID]; o != nil {
		return len(o.ends)
	}
	return 0
}

// watch re-reads every session that has something open, once a Check, and
// ends those no longer alive: that is how a logout on another node reaches
// this one. One query per open session a tick, not per open thing; it
// stops when nothing is open.
func (r *Registry) watch() {
	t := time.NewTicker(r.cfg.Check)
	defer t.Stop()
	for range t.C {
		r.mu.Lock()
		if len(r.open) == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		ids := make([]string, 0, len(r.open))
		for id := range r.open {
			ids = append(ids, id)
		}
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Check)
		var ended []string
		for _, id := range ids {
			switch err := r.Alive(ctx, id); {
			case errors.Is(err, ErrEnded):
				ended = append(ended, id)
			case err != nil:
				r.cfg.Log.Warn("login session: check", "session", id, "err", err)
			}
		}
		cancel()
		r.EndSessions(ended...)
	}
}
