package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/vmdhq/vmd/pkg/api"
)

// ListSnapshots lists a VM's snapshots, oldest first.
func (c *Client) ListSnapshots(ctx context.Context, idOrName string) ([]api.Snapshot, error) {
	out := []api.Snapshot{}
	if err := c.do(ctx, http.MethodGet, "/vms/"+escape(idOrName)+"/snapshots", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list snapshots of vm %s: %w", idOrName, err)
	}
	return out, nil
}

// CreateSnapshot snapshots a VM and returns the snapshot once it is taken.
func (c *Client) CreateSnapshot(ctx context.Context, idOrName string, req api.CreateSnapshotRequest) (*api.Snapshot, error) {
	var out api.Snapshot
	if err := c.do(ctx, http.MethodPost, "/vms/"+escape(idOrName)+"/snapshots", nil, req, &out); err != nil {
		return nil, fmt.Errorf("snapshot vm %s: %w", idOrName, err)
	}
	return &out, nil
}

// RestoreSnapshot puts a VM back to one of its snapshots and returns the VM.
func (c *Client) RestoreSnapshot(ctx context.Context, idOrName, snap string) (*api.VM, error) {
	var out api.VM
	if err := c.do(ctx, http.MethodPost, "/vms/"+escape(idOrName)+"/snapshots/"+escape(snap)+"/restore", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("restore snapshot %s of vm %s: %w", snap, idOrName, err)
	}
	return &out, nil
}

// DeleteSnapshot deletes one of a VM's snapshots.
func (c *Client) DeleteSnapshot(ctx context.Context, idOrName, snap string) error {
	if err := c.do(ctx, http.MethodDelete, "/vms/"+escape(idOrName)+"/snapshots/"+escape(snap), nil, nil, nil); err != nil {
		return fmt.Errorf("delete snapshot %s of vm %s: %w", snap, idOrName, err)
	}
	return nil
}
