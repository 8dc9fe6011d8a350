package queue

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Memory is the in-process Queue of a single node. It keeps Redis's
// semantics so code tested on one holds on the other: a job stays pending
// until its handler succeeds; after an error, or when its consumer returns
// without acknowledging it, any consumer of the node may take it again once
// it has been idle for MinIdle. Jobs do not survive a restart: in
// single-node mode the reconciler rescans the store at start instead.
type Memory struct {
	opts   Options
	mu     sync.Mutex
	nodes  map[string]*memNode
	seq    uint64
	closed bool
	done   chan struct{}
}

type memNode struct {
	ready   []Job                // published, not yet delivered, oldest first
	pending map[string]*memEntry // delivered, not yet acknowledged
	wake    chan struct{}        // closed (and replaced) when there is news
}

type memEntry struct {
	job     Job
	seq     uint64
	running bool      // a live handler has it: not claimable
	idle    time.Time // when it last stopped running
}

// NewMemory returns an empty in-process Queue.
func NewMemory(opts Options) *Memory {
	return &Memory{opts: opts.withDefaults(), nodes: map[string]*memNode{}, done: make(chan struct{})}
}

func (m *Memory) node(name string) *memNode {
	n := m.nodes[name]
	if n == nil {
		n = &memNode{pending: map[string]*memEntry{}, wake: make(chan struct{})}
		m.nodes[name] = n
	}
	return n
}

func (n *memNode) signal() {
	close(n.wake)
	n.wake = make(chan struct{})
}

// Publish implements Queue.
func (m *Memory) Publish(_ context.Context, j Job) error {
	if j.Node == "" {
		return fmt.Errorf("publish job for vm %s: no node", j.VMID)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.seq++
	j.ID = strconv.FormatUint(m.seq, 10)
	if j.Enqueued.IsZero() {
		j.Enqueued = time.Now()
	}
	n := m.node(j.Node)
	n.ready = append(n.ready, j)
	n.signal()
	return nil
}

// Consume implements Queue. It returns nil when ctx ends or the queue closes.
func (m *Memory) Consume(ctx context.Context, node, consumer string, h Handler) error {
	if node == "" || consumer == "" {
		return fmt.Errorf("consume: node and consumer must be set")
	}
	for {
		e, ok := m.next(ctx, node)
		if !ok {
			return nil
		}
		err := h(ctx, e.job)
		m.mu.Lock()
		n := m.node(node)
		if err == nil {
			delete(n.pending, e.job.ID)
		} else {
			e.running = false
			e.idle = time.Now()
			n.signal() // waiting consumers re-arm their claim timers
		}
		m.mu.Unlock()
		if err != nil {
			m.opts.Log.Warn("job failed, will retry", "node", node, "vm", e.job.VMID, "reason", e.job.Reason, "err", err)
		}
	}
}

// next waits for a job to deliver: a new one, else one idle past MinIdle.
func (m *Memory) next(ctx context.Context, node string) (*memEntry, bool) {
	for {
		m.mu.Lock()
		if m.closed || ctx.Err() != nil {
			m.mu.Unlock()
			return nil, false
		}
		n := m.node(node)
		now := time.Now()
		if len(n.ready) > 0 {
			j := n.ready[0]
			n.ready = n.ready[1:]
			seq, _ := strconv.ParseUint(j.ID, 10, 64)
			e := &memEntry{job: j, seq: seq, running: true}
			n.pending[j.ID] = e
			m.mu.Unlock()
			return e, true
		}
		var claim *memEntry
		var due time.Time
		for _, e := range n.pending {
			if e.running {
				continue
			}
			at := e.idle.Add(m.opts.MinIdle)
			if !now.Before(at) && (claim == nil || e.seq < claim.seq) {
				claim = e
			}
			if due.IsZero() || at.Before(due) {
				due = at
			}
		}
		if claim != nil {
			claim.running = true
			m.mu.Unlock()
			return claim, true
		}
		wake := n.wake
		m.mu.Unlock()
		var timer <-chan time.Time
		var t *time.Timer
		if !due.IsZero() {
			t = time.NewTimer(time.Until(due))
			timer = t.C
		}
		select {
		case <-ctx.Done():
		case <-m.done:
		case <-wake:
		case <-timer:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// Depth implements Queue.
func (m *Memory) Depth(_ context.Context, node string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[node]
	if n == nil {
		return 0, nil
	}
	return int64(len(n.ready) + len(n.pending)), nil
}

// Close implements Queue: consumers return, Publish fails.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		close(m.done)
	}
	return nil
}
