package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/vmdhq/vmd/pkg/api"
)

// ListSSHKeys returns the caller's SSH public keys, oldest first.
func (c *Client) ListSSHKeys(ctx context.Context) ([]api.SSHKey, error) {
	out := []api.SSHKey{}
	if err := c.do(ctx, http.MethodGet, "/me/ssh-keys", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list ssh keys: %w", err)
	}
	return out, nil
}

// AddSSHKey adds one SSH public key to the caller's account.
func (c *Client) AddSSHKey(ctx context.Context, req api.SSHKeyRequest) (*api.SSHKey, error) {
	var out api.SSHKey
	if err := c.do(ctx, http.MethodPost, "/me/ssh-keys", nil, req, &out); err != nil {
		return nil, fmt.Errorf("add ssh key: %w", err)
	}
	return &out, nil
}

// DeleteSSHKey deletes one of the caller's SSH keys by name.
func (c *Client) DeleteSSHKey(ctx context.Context, name string) error {
	if err := c.do(ctx, http.MethodDelete, "/me/ssh-keys/"+escape(name), nil, nil, nil); err != nil {
		return fmt.Errorf("delete ssh key %s: %w", name, err)
	}
	return nil
}
