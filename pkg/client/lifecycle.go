package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/vmdhq/vmd/pkg/api"
)

// PauseVM freezes a running VM (state paused) and returns it as accepted.
func (c *Client) PauseVM(ctx context.Context, idOrName string) (*api.VM, error) {
	var out api.VM
	if err := c.do(ctx, http.MethodPost, "/vms/"+escape(idOrName)+"/pause", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("pause vm %s: %w", idOrName, err)
	}
	return &out, nil
}

// ResumeVM thaws a paused VM and returns it as accepted.
func (c *Client) ResumeVM(ctx context.Context, idOrName string) (*api.VM, error) {
	var out api.VM
	if err := c.do(ctx, http.MethodPost, "/vms/"+escape(idOrName)+"/resume", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("resume vm %s: %w", idOrName, err)
	}
	return &out, nil
}

// ExtendVM makes a VM expire ttl ("30m") from now and returns it with its new expires_at.
func (c *Client) ExtendVM(ctx context.Context, idOrName, ttl string) (*api.VM, error) {
	var out api.VM
	if err := c.do(ctx, http.MethodPost, "/vms/"+escape(idOrName)+"/extend", nil, api.ExtendRequest{TTL: ttl}, &out); err != nil {
		return nil, fmt.Errorf("extend vm %s: %w", idOrName, err)
	}
	return &out, nil
}
