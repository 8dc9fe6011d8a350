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

// CreateShareLink mints a view-only console link of a VM; ttl "" is the server's default.
func (c *Client) CreateShareLink(ctx context.Context, idOrName, ttl string) (*api.ShareLink, error) {
	var out api.ShareLink
	if err := c.do(ctx, http.MethodPost, "/vms/"+escape(idOrName)+"/console/links", nil, api.CreateShareLinkRequest{TTL: ttl}, &out); err != nil {
		return nil, fmt.Errorf("share link of vm %s: %w", idOrName, err)
	}
	return &out, nil
}

// ShareLinks lists a VM's live share links.
func (c *Client) ShareLinks(ctx context.Context, idOrName string) ([]api.ShareLink, error) {
	var out []api.ShareLink
	if err := c.do(ctx, http.MethodGet, "/vms/"+escape(idOrName)+"/console/links", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("share links of vm %s: %w", idOrName, err)
	}
	return out, nil
}

// RevokeShareLink deletes a share link and closes what it opened.
func (c *Client) RevokeShareLink(ctx context.Context, idOrName, id string) error {
	if err := c.do(ctx, http.MethodDelete, "/vms/"+escape(idOrName)+"/console/links/"+escape(id), nil, nil, nil); err != nil {
		return fmt.Errorf("revoke share link %s of vm %s: %w", id, idOrName, err)
	}
	return nil
}
