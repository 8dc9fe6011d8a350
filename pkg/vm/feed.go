package vm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmdhq/vmd/pkg/store"
)

// ChangeStore is what the change feed reads (store.Store has it).
type ChangeStore interface {
	ListChanges(ctx context.Context, ownerID string, afterID int64, limit int) ([]store.Change, error)
	LastChangeID(ctx context.Context, ownerID string) (int64, error)
}

// ErrTooManyStreams: the caller already has the most change streams open.
var ErrTooManyStreams = errors.New("too many open event streams")

// Defaults of FeedConfig.
const (
	DefaultFeedPoll       = 300 * time.Millisecond
	DefaultStreamsPerUser = 16
	feedPage              = 200 // bounds one query; a backlog comes page by page
	feedBuffer            = 256 // changes queued per subscriber before it must catch up itself
)

// FeedConfig wires a Feed. Zero values take the defaults.
type FeedConfig struct {
	Store ChangeStore
	// Poll is how often the one poller asks the store for new changes.
	Poll time.Duration
	// MaxPerUser caps the open subscriptions of one user.
	MaxPerUser int
	Log        *slog.Logger
}

// Feed is the change feed behind GET /events. One poller reads every
// owner's new changes with one query a tick and hands each to the
// subscriptions that may see it, so the cost of a tick does not grow with
// the number of open streams. It runs only while someone subscribes.
type Feed struct {
	cfg          FeedConfig
	page, buffer int // feedPage and feedBuffer; smaller in tests

	mu      sync.Mutex
	subs    map[*Subscription]struct{}
	perUser map[string]int
	head    int64 // newest change handed out; valid while running
	running bool
	stop    chan struct{}
}

// NewFeed returns an idle feed.
func NewFeed(cfg FeedConfig) *Feed {
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultFeedPoll
	}
	if cfg.MaxPerUser <= 0 {
		cfg.MaxPerUser = DefaultStreamsPerUser
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Feed{cfg: cfg, page: feedPage, buffer: feedBuffer, subs: map[*Subscription]struct{}{}, perUser: map[string]int{}}
}

// Subscription is one reader of the feed: a caller's changes, or every
// owner's for an admin who asked for all.
type Subscription struct {
	f      *Feed
	userID string
	owner  string // "" for all
	after  int64  // last change delivered or skipped
	queue  chan store.Change
	lagged chan struct{} // signalled when it must catch up from the store
	// overflow is set when the queue was full: nothing more is queued until
	// the reader has caught up, so what is queued stays contiguous.
	overflow atomic.Bool
	closed   sync.Once
}

// Subscribe opens a subscription for caller, of every owner's changes when
// all is set (vm.AuthorizeAll decides). It starts after change id after, or
// at the newest change when after is negative; Start tells where it began.
func (f *Feed) Subscribe(ctx context.Context, caller store.User, all bool, after int64) (*Subscription, error) {
	owner := caller.ID
	if all {
		if err := AuthorizeAll(caller); err != nil {
			return nil, fmt.Errorf("events of all vms: %w", err)
		}
		owner = ""
	}
	if after < 0 {
		last, err := f.cfg.Store.LastChangeID(ctx, owner)
		if err != nil {
			return nil, fmt.Errorf("newest change: %w", err)
		}
		after = last
	}
	s := &Subscription{f: f, userID: caller.ID, owner: owner, after: after,
		queue: make(chan store.Change, f.buffer), lagged: make(chan struct{}, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := f.perUser[caller.ID]; n >= f.cfg.MaxPerUser {
		return nil, fmt.Errorf("%w: you already have %d (the limit)", ErrTooManyStreams, n)
	}
	f.perUser[caller.ID]++
	f.subs[s] = struct{}{}
	if !f.running {
		last, err := f.cfg.Store.LastChangeID(ctx, "")
		if err != nil {
			f.dropLocked(s)
			return nil, fmt.Errorf("newest change: %w", err)
		}
		f.head, f.running, f.stop = last, true, make(chan struct{})
		go f.poll(f.stop)
	}
	if s.after < f.head {
		// Changes up to head went out before this subscription: read them itself.
		s.signalLag()
	}
	return s, nil
}

func (f *Feed) dropLocked(s *Subscription) {
	if _, ok := f.subs[s]; !ok {
		return
	}
	delete(f.subs, s)
	if f.perUser[s.userID]--; f.perUser[s.userID] <= 0 {
		delete(f.perUser, s.userID)
	}
	if len(f.subs) == 0 && f.running {
		close(f.stop)
		f.running = false
	}
}

// poll is the one poller: one query a tick while nothing piles up.
func (f *Feed) poll(stop <-chan struct{}) {
	t := time.NewTicker(f.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		f.tick(stop)
	}
}

func (f *Feed) tick(stop <-chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*f.cfg.Poll+time.Second)
	defer cancel()
	for {
		f.mu.Lock()
		head := f.head
		f.mu.Unlock()
		cs, err := f.cfg.Store.ListChanges(ctx, "", head, f.page)
		if err != nil {
			f.cfg.Log.Warn("events: list changes", "after", head, "err", err)
			return
		}
		if len(cs) == 0 {
			return
		}
		f.mu.Lock()
		select {
		case <-stop:
			f.mu.Unlock()
			return // the last subscriber left; a new poller owns head now
		default:
		}
		for _, ch := range cs {
			for s := range f.subs {
				if s.owner == "" || s.owner == ch.OwnerID {
					s.offer(ch)
				}
			}
		}
		f.head = cs[len(cs)-1].ID
		f.mu.Unlock()
		if len(cs) < f.page {
			return
		}
	}
}

func (s *Subscription) offer(ch store.Change) {
	if s.overflow.Load() {
		return
	}
	select {
	case s.queue <- ch:
	default:
		s.overflow.Store(true)
		s.signalLag()
	}
}

func (s *Subscription) signalLag() {
	select {
	case s.lagged <- struct{}{}:
	default:
	}
}

// Next waits for the next changes after the last ones returned, up to one
// page, until ctx ends or the wake channel fires (nil changes then). The
// changes come in order, each once.
func (s *Subscription) Next(ctx context.Context, wake <-chan time.Time) ([]store.Change, error) {
	for {
		// A catch-up goes before anything queued, which may be newer than
		// what the catch-up finds.
		select {
		case <-s.lagged:
			if out, err := s.catchUp(ctx); err != nil || len(out) > 0 {
				return out, err
			}
			continue
		default:
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wake:
			return nil, nil
		case <-s.lagged:
			if out, err := s.catchUp(ctx); err != nil || len(out) > 0 {
				return out, err
			}
		case ch := <-s.queue:
			batch := []store.Change{ch}
		drain:
			for len(batch) < s.f.page {
				select {
				case ch := <-s.queue:
					batch = append(batch, ch)
				default:
					break drain
				}
			}
			if out := s.deliver(batch); len(out) > 0 {
				return out, nil
			}
		}
	}
}

// catchUp reads the owner's changes straight from the store, when the
// subscription started behind the poller or its queue overflowed; the
// queue's copies of them are skipped by deliver.
func (s *Subscription) catchUp(ctx context.Context) ([]store.Change, error) {
	s.overflow.Store(false)
	cs, err := s.f.cfg.Store.ListChanges(ctx, s.owner, s.after, s.f.page)
	if err != nil {
		s.signalLag() // try again on the next call
		return nil, fmt.Errorf("list changes after %d: %w", s.after, err)
	}
	if len(cs) == s.f.page {
		s.signalLag()
	}
	return s.deliver(cs), nil
}

// deliver drops what was already delivered and moves the position.
func (s *Subscription) deliver(cs []store.Change) []store.Change {
	out := cs[:0:0]
	for _, ch := range cs {
		if ch.ID > s.after {
			out = append(out, ch)
			s.after = ch.ID
		}
	}
	return out
}

// Start is where the subscription began, or the last change Next returned.
func (s *Subscription) Start() int64 { return s.after }

// Close ends the subscription; it frees the caller's place under the cap.
func (s *Subscription) Close() {
	s.closed.Do(func() {
		s.f.mu.Lock()
		s.f.dropLocked(s)
		s.f.mu.Unlock()
	})
}
