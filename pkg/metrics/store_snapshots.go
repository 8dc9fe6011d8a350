package metrics

import (
	"context"
	"time"

	"github.com/vmdhq/vmd/pkg/store"
)

func (t *timedStore) CreateSnapshot(ctx context.Context, s store.Snapshot) error {
	defer t.since("create_snapshot", time.Now())
	return t.Store.CreateSnapshot(ctx, s)
}

func (t *timedStore) FinishSnapshot(ctx context.Context, vmID, name, consistency string) error {
	defer t.since("finish_snapshot", time.Now())
	return t.Store.FinishSnapshot(ctx, vmID, name, consistency)
}

func (t *timedStore) DeleteSnapshot(ctx context.Context, vmID, name string) error {
	defer t.since("delete_snapshot", time.Now())
	return t.Store.DeleteSnapshot(ctx, vmID, name)
}

func (t *timedStore) ListSnapshots(ctx context.Context, vmID string) ([]store.Snapshot, error) {
	defer t.since("list_snapshots", time.Now())
	return t.Store.ListSnapshots(ctx, vmID)
}

func (t *timedStore) ListOwnerSnapshots(ctx context.Context, ownerID string) ([]store.Snapshot, error) {
	defer t.since("list_owner_snapshots", time.Now())
	return t.Store.ListOwnerSnapshots(ctx, ownerID)
}

func (t *timedStore) SetSnapshotKeep(ctx context.Context, vmID string, keep int) error {
	defer t.since("set_snapshot_keep", time.Now())
	return t.Store.SetSnapshotKeep(ctx, vmID, keep)
}

func (t *timedStore) SnapshotKeep(ctx context.Context, vmID string) (int, error) {
	defer t.since("snapshot_keep", time.Now())
	return t.Store.SnapshotKeep(ctx, vmID)
}
