package metrics

import (
	"context"
	"time"

	"github.com/vmdhq/vmd/pkg/store"
)

func (t *timedStore) GetVMView(ctx context.Context, k store.VMKey) (store.VMView, error) {
	defer t.since("get_vm_view", time.Now())
	return t.Store.GetVMView(ctx, k)
}

func (t *timedStore) ListVMViews(ctx context.Context, ownerID string) ([]store.VMView, error) {
	defer t.since("list_vm_views", time.Now())
	return t.Store.ListVMViews(ctx, ownerID)
}
