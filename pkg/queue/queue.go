// Package queue carries lifecycle jobs ("reconcile VM X") to the node that
// owns the VM. In process it is a channel; with --redis-url it is a Redis
// Stream per node with a consumer group: at-least-once delivery, stuck jobs
// reclaimed (XAUTOCLAIM). Handlers must be idempotent: a job only says
// "look at this VM again", and the reconciler acts on the stored desired state.
package queue

import (
	"context"
	"time"
)

// Job asks a node to reconcile one VM.
type Job struct {
	ID       string // set by the queue
	VMID     string
	Node     string // the node that must handle it
	Reason   string // "create", "start", "stop", "force-stop", "delete", …
	Enqueued time.Time
}

// Handler processes one job; an error leaves it pending for redelivery.
type Handler func(ctx context.Context, j Job) error

// Queue is implemented in process (Memory) and on Redis Streams (Redis).
type Queue interface {
	// Publish adds a job for j.Node.
	Publish(ctx context.Context, j Job) error
	// Consume delivers node's jobs to h until ctx ends; consumer names this
	// process within the node's group.
	Consume(ctx context.Context, node, consumer string, h Handler) error
	// Depth is the number of jobs not yet acknowledged for node (queue_depth).
	Depth(ctx context.Context, node string) (int64, error)
	Close() error
}
