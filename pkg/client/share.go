package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/vmdhq/vmd/pkg/api"
)

// ConsoleViewOnly returns short-lived URLs for a view-only console.
func (c *Client) ConsoleViewOnly(ctx context.Context, idOrName string) (*api.ConsoleResponse, error) {
	var out api.ConsoleResponse
	if err := c.do(ctx, http.MethodGet, "/vms/"+escape(idOrName)+"/console", map[string]string{"view_only": "true"}, nil, &out); err != nil {
		return nil, fmt.Errorf("view-only console of vm %s: %w", idOrName, err)
	}
	return &out, nil
}

// ConsoleSessions lists who has a VM's console open.
func (c *Client) ConsoleSessions(ctx context.Context, idOrName string) ([]api.ConsoleSession, error) {
	var out []api.ConsoleSession
	if err := c.do(ctx, http.MethodGet, "/vms/"+escape(idOrName)+"/console/sessions", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("console sessions of vm %s: %w", idOrName, err)
	}
	return out, nil
}
