package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a Queue on Redis Streams: one stream per node
// (<prefix>jobs:<node>) read by one consumer group (<prefix>node:<node>), so
// the node's consumers share its jobs. Delivery is at least once: an entry
// is acknowledged (XACK) only after its handler succeeds; a handler error,
// a crash or a lost connection leaves it pending, and after MinIdle any
// consumer of the node takes it over (XAUTOCLAIM). A job can therefore run
// twice, or on two consumers at once after a long stall; handlers must be
// idempotent and take the VM's lock. Jobs survive a Redis restart only as
// far as Redis persists them (appendonly yes).
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
	opts   Options
	once   sync.Once
	done   chan struct{}
}

// NewRedis returns a Queue on rdb whose keys start with prefix. Close does
// not close rdb.
func NewRedis(rdb redis.UniversalClient, prefix string, opts Options) *Redis {
	return &Redis{rdb: rdb, prefix: prefix, opts: opts.withDefaults(), done: make(chan struct{})}
}

func (q *Redis) stream(node string) string { return q.prefix + "jobs:" + node }
func (q *Redis) group(node string) string  { return q.prefix + "node:" + node }

// Publish implements Queue.
func (q *Redis) Publish(ctx context.Context, j Job) error {
	if j.Node == "" {
		return fmt.Errorf("publish job for vm %s: no node", j.VMID)
	}
	select {
	case <-q.done:
		return ErrClosed
	default:
	}
	if j.Enqueued.IsZero() {
		j.Enqueued = time.Now()
	}
	err := q.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: q.stream(j.Node),
		MaxLen: q.opts.MaxLen,
		Approx: true,
		Values: []any{"vm", j.VMID, "reason", j.Reason, "enqueued", j.Enqueued.UnixNano()},
	}).Err()
	if err != nil {
		return fmt.Errorf("publish %s job for vm %s to node %s: %w", j.Reason, j.VMID, j.Node, err)
	}
	return nil
}

func decode(node string, m redis.XMessage) Job {
	j := Job{ID: m.ID, Node: node}
	j.VMID, _ = m.Values["vm"].(string)
	j.Reason, _ = m.Values["reason"].(string)
	if s, ok := m.Values["enqueued"].(string); ok {
		if ns, err := strconv.ParseInt(s, 10, 64); err == nil {
			j.Enqueued = time.Unix(0, ns)
		}
	}
	return j
}

// Consume implements Queue. Connection errors are logged and retried with
// backoff; it returns nil when ctx ends or the queue closes.
func (q *Redis) Consume(ctx context.Context, node, consumer string, h Handler) error {
	if node == "" || consumer == "" {
		return fmt.Errorf("consume: node and consumer must be set")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-q.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	c := &redisConsumer{q: q, node: node, name: consumer, stream: q.stream(node), group: q.group(node), h: h}
	c.run(ctx)
	return nil
}

// redisConsumer is one Consume call's state.
type redisConsumer struct {
	q             *Redis
	node, name    string
	stream, group string
	h             Handler
	bo            backoff
	groupOK       bool
	ownCursor     string // where re-reading our own pending entries has got to
	ownDone       bool
	claimCursor   string
	lastClaim     time.Time
}

func (c *redisConsumer) run(ctx context.Context) {
	c.ownCursor, c.claimCursor = "0", "0-0"
	for ctx.Err() == nil {
		msgs, err := c.fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if strings.Contains(err.Error(), "NOGROUP") {
				// Redis came back without our group (no persistence): make it again.
				c.groupOK, c.ownDone, c.ownCursor = false, false, "0"
			}
			c.q.opts.Log.Warn("job queue: redis error, retrying", "node", c.node, "consumer", c.name, "err", err)
			c.bo.wait(ctx)
			continue
		}
		c.bo.reset()
		fetched := time.Now()
		for _, m := range msgs {
			if ctx.Err() != nil {
				return // the rest stay pending for whoever comes next
			}
			// Later entries of a batch sat unwatched while earlier ones ran;
			// if they sat long, another consumer may have claimed them.
			if time.Since(fetched) > c.q.opts.MinIdle/3 && !c.touch(ctx, m.ID) {
				continue
			}
			c.handle(ctx, m)
		}
	}
}

// fetch returns the next batch: first this consumer's own pending entries
// (left by an earlier run under the same name), then, every ClaimEvery,
// entries idle too long anywhere in the group, otherwise new entries.
func (c *redisConsumer) fetch(ctx context.Context) ([]redis.XMessage, error) {
	q := c.q
	if !c.groupOK {
		// Start at 0 so jobs published before the group existed are delivered.
		err := q.rdb.XGroupCreateMkStream(ctx, c.stream, c.group, "0").Err()
		if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
			return nil, fmt.Errorf("create group %s: %w", c.group, err)
		}
		c.groupOK = true
	}
	if !c.ownDone {
		msgs, err := c.read(ctx, c.ownCursor, -1)
		if err != nil {
			return nil, err
		}
		if len(msgs) == 0 {
			c.ownDone = true
		} else {
			c.ownCursor = msgs[len(msgs)-1].ID
		}
		return msgs, nil
	}
	if since := time.Since(c.lastClaim); since >= q.opts.ClaimEvery {
		msgs, next, err := q.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: c.stream, Group: c.group, Consumer: c.name,
			MinIdle: q.opts.MinIdle, Start: c.claimCursor, Count: 64,
		}).Result()
		if err != nil {
			return nil, fmt.Errorf("reclaim on %s: %w", c.stream, err)
		}
		c.claimCursor = next
		if next == "0-0" {
			c.lastClaim = time.Now()
		}
		return msgs, nil
	}
	block := min(q.opts.Block, q.opts.ClaimEvery-time.Since(c.lastClaim))
	return c.read(ctx, ">", max(block, time.Millisecond))
}

// read runs XREADGROUP from id; block < 0 means do not block.
func (c *redisConsumer) read(ctx context.Context, id string, block time.Duration) ([]redis.XMessage, error) {
	res, err := c.q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: c.group, Consumer: c.name, Streams: []string{c.stream, id}, Count: 64, Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", c.stream, err)
	}
	if len(res) == 0 {
		return nil, nil
	}
	return res[0].Messages, nil
}

// touchScript resets a pending entry's idle time, but only while this
// consumer still owns it: if another consumer already took it over, taking
// it back would just make the two fight.
var touchScript = redis.NewScript(`
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 1 and p[1][2] == ARGV[2] then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
  return 1
end
return 0`)

// touch keeps entry id ours; false when another consumer has it now. On a
// Redis error it assumes the entry is still ours: handling it again is safe,
// dropping it is not.
func (c *redisConsumer) touch(ctx context.Context, id string) bool {
	n, err := touchScript.Run(ctx, c.q.rdb, []string{c.stream}, c.group, c.name, id).Int()
	if err != nil {
		if ctx.Err() == nil {
			c.q.opts.Log.Warn("job queue: keep-alive failed", "node", c.node, "job", id, "err", err)
		}
		return true
	}
	return n == 1
}

func (c *redisConsumer) handle(ctx context.Context, m redis.XMessage) {
	if m.Values == nil {
		// Trimmed away while pending (the stream overflowed MaxLen): nothing to run.
		c.ack(ctx, m.ID)
		return
	}
	j := decode(c.node, m)
	hctx, stopTouch := context.WithCancel(ctx)
	touched := make(chan struct{})
	go func() {
		defer close(touched)
		t := time.NewTicker(max(c.q.opts.MinIdle/3, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-t.C:
				c.touch(hctx, m.ID)
			}
		}
	}()
	err := c.h(ctx, j)
	stopTouch()
	<-touched
	if err != nil {
		c.q.opts.Log.Warn("job failed, will retry", "node", c.node, "vm", j.VMID, "reason", j.Reason, "job", j.ID, "err", err)
		return
	}
	c.ack(ctx, m.ID)
}

// ack retries until Redis takes it; once ctx has ended it makes one last
// attempt, since the work is done and a redelivery would only repeat it.
func (c *redisConsumer) ack(ctx context.Context, id string) {
	var bo backoff
	for ctx.Err() == nil {
		err := c.q.rdb.XAck(ctx, c.stream, c.group, id).Err()
		if err == nil {
			return
		}
		c.q.opts.Log.Warn("job queue: ack failed, retrying", "node", c.node, "job", id, "err", err)
		bo.wait(ctx)
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = c.q.rdb.XAck(actx, c.stream, c.group, id).Err()
}

// Depth implements Queue: entries delivered but not acknowledged (XPENDING)
// plus entries not yet delivered to the group (XINFO GROUPS lag, Redis 7.0;
// counted with XRANGE when Redis cannot tell the lag).
func (q *Redis) Depth(ctx context.Context, node string) (int64, error) {
	stream, group := q.stream(node), q.group(node)
	groups, err := q.rdb.XInfoGroups(ctx, stream).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return 0, nil
		}
		return 0, fmt.Errorf("queue depth of node %s: %w", node, err)
	}
	for _, g := range groups {
		if g.Name != group {
			continue
		}
		if g.Lag >= 0 {
			return g.Pending + g.Lag, nil
		}
		undelivered, err := q.rdb.XRange(ctx, stream, "("+g.LastDeliveredID, "+").Result()
		if err != nil {
			return 0, fmt.Errorf("queue depth of node %s: %w", node, err)
		}
		return g.Pending + int64(len(undelivered)), nil
	}
	// No consumer has started yet: everything in the stream is waiting.
	n, err := q.rdb.XLen(ctx, stream).Result()
	if err != nil {
		return 0, fmt.Errorf("queue depth of node %s: %w", node, err)
	}
	return n, nil
}

// Close implements Queue: consumers return, Publish fails. The Redis client
// belongs to the caller and stays open.
func (q *Redis) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}
