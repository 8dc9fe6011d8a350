package vm

import (
	"context"
	"log/slog"
	"time"

	"github.com/vmdhq/vmd/pkg/queue"
	"github.com/vmdhq/vmd/pkg/store"
)

// LocalKicker is what a node's own reconciler offers.
type LocalKicker interface {
	Kick(id string)
	ForceStop(id string)
}

// QueueKicker routes kicks to the node that owns each VM: its own VMs go
// straight to the local reconciler, others become jobs on the work queue,
// which the owning node consumes (see ConsumeJobs). The periodic sweep of
// every reconciler stays the backstop if a job is lost.
type QueueKicker struct {
	Store store.Store
	Queue queue.Queue
	Local LocalKicker
	Node  string
	Log   *slog.Logger
}

// Kick implements Kicker.
func (k *QueueKicker) Kick(id string) { k.route(id, "kick") }

// ForceStop lets a stop skip the guest's ACPI wait, on whichever node runs it.
func (k *QueueKicker) ForceStop(id string) { k.route(id, "force-stop") }

func (k *QueueKicker) route(id, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := k.Store.GetVM(ctx, id)
	if err != nil || v.Node == "" || v.Node == k.Node {
		k.local(id, reason)
		return
	}
	if err := k.Queue.Publish(ctx, queue.Job{VMID: id, Node: v.Node, Reason: reason, Enqueued: time.Now()}); err != nil {
		k.Log.Warn("publish job; the owner's sweep will catch up", "vm", id, "node", v.Node, "err", err)
	}
}

func (k *QueueKicker) local(id, reason string) {
	if reason == "force-stop" {
		k.Local.ForceStop(id)
		return
	}
	k.Local.Kick(id)
}

// ConsumeJobs hands this node's queued jobs to its reconciler until ctx
// ends. Handling is idempotent: a job only says "look at this VM again".
func (k *QueueKicker) ConsumeJobs(ctx context.Context, consumer string) error {
	return k.Queue.Consume(ctx, k.Node, consumer, func(_ context.Context, j queue.Job) error {
		k.local(j.VMID, j.Reason)
		return nil
	})
}
