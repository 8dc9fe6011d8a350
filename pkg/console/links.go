package console

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/onetime"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
)

// Share links: a revocable view-only console link of one VM, minted by
// someone who may act on it. Its secret is kept only as a hash; the link
// opens view-only sessions (as its maker, for caps and presence) until it
// expires or is revoked.

// Bounds of a share link's lifetime.
const (
	DefaultLinkTTL = time.Hour
	MaxLinkTTL     = 24 * time.Hour
)

// ErrLinkTTL: a share link's TTL is out of bounds.
var ErrLinkTTL = fmt.Errorf("%w: ttl must be a duration between 1m and %s", vm.ErrInvalid, MaxLinkTTL)

// LinkStore keeps share links: store.Store is one. Links live in the
// database, so a link minted on one node opens on every node and survives
// a vmd restart.
type LinkStore = store.ShareLinkStore

func (c *Console) links() LinkStore { return c.cfg.Links }

// CreateLink makes a share link of v for caller, valid ttl (0: the default).
func (c *Console) CreateLink(ctx context.Context, caller store.User, v store.VM, ttl time.Duration) (api.ShareLink, error) {
	if err := vm.Authorize(caller, v); err != nil {
		return api.ShareLink{}, fmt.Errorf("share link: %w", err)
	}
	if ttl == 0 {
		ttl = DefaultLinkTTL
	}
	if ttl < time.Minute || ttl > MaxLinkTTL {
		return api.ShareLink{}, ErrLinkTTL
	}
	secret, err := onetime.New()
	if err != nil {
		return api.ShareLink{}, fmt.Errorf("share link: %w", err)
	}
	idPart, err := onetime.New()
	if err != nil {
		return api.ShareLink{}, fmt.Errorf("share link: %w", err)
	}
	now := c.cfg.Now()
	l := store.ShareLink{ID: "lnk_" + strings.ToLower(idPart[:12]), VMID: v.ID, OwnerID: caller.ID, Hash: onetime.Hash(secret),
		CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := c.links().CreateShareLink(ctx, l); err != nil {
		return api.ShareLink{}, fmt.Errorf("store share link of vm %s: %w", v.ID, err)
	}
	out := linkToAPI(l)
	// The secret rides in the fragment, which browsers never send on.
	out.URL = c.base + "/console/" + url.PathEscape(v.ID) + "#link=" + secret
	return out, nil
}

func linkToAPI(l store.ShareLink) api.ShareLink {
	return api.ShareLink{ID: l.ID, VMID: l.VMID, CreatedAt: l.CreatedAt, ExpiresAt: l.ExpiresAt}
}

// Links lists the live share links of v.
func (c *Console) Links(ctx context.Context, caller store.User, v store.VM) ([]api.ShareLink, error) {
	if err := vm.Authorize(caller, v); err != nil {
		return nil, fmt.Errorf("share links: %w", err)
	}
	ls, err := c.links().ListShareLinks(ctx, v.ID, c.cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("share links of vm %s: %w", v.ID, err)
	}
	out := []api.ShareLink{}
	for _, l := range ls {
		out = append(out, linkToAPI(l))
	}
	return out, nil
}

// RevokeLink deletes a share link of v and closes the sessions it opened.
func (c *Console) RevokeLink(ctx context.Context, caller store.User, v store.VM, id string) error {
	if err := vm.Authorize(caller, v); err != nil {
		return fmt.Errorf("share link: %w", err)
	}
	err := c.links().DeleteShareLink(ctx, v.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("share link %s of vm %s: %w", id, v.Name, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("revoke share link %s: %w", id, err)
	}
	// Sessions of the link on other nodes end at their next state poll.
	c.CloseLink(v.ID, id)
	return nil
}

// LinkToken makes a view-only console token from a share link's secret.
func (c *Console) LinkToken(ctx context.Context, vmID, secret string) (api.ConsoleResponse, error) {
	if secret == "" {
		return api.ConsoleResponse{}, ErrTokenInvalid
	}
	l, err := c.links().GetShareLink(ctx, onetime.Hash(secret), c.cfg.Now())
	if errors.Is(err, store.ErrNotFound) {
		return api.ConsoleResponse{}, ErrTokenInvalid
	}
	if err != nil {
		return api.ConsoleResponse{}, fmt.Errorf("share link of vm %s: %w", vmID, err)
	}
	if l.VMID != vmID || !c.cfg.Now().Before(l.ExpiresAt) {
		return api.ConsoleResponse{}, ErrTokenInvalid
	}
	v, maker, err := c.vmAndUser(ctx, Grant{UserID: l.OwnerID, VMID: l.VMID})
	if err != nil {
		return api.ConsoleResponse{}, err
	}
	return c.IssueWith(ctx, maker, "", v, IssueOptions{LinkID: l.ID})
}

// Refusals of a share link's token or session.
var (
	errLinkGone    = fmt.Errorf("%w: its share link was revoked", ErrTokenInvalid)
	errLinkTimeout = fmt.Errorf("%w: its share link has expired", ErrTokenInvalid)
)

// linkAlive refuses a share link's token once the link is revoked
// (errLinkGone) or has expired (errLinkTimeout); open sessions of a link
// check it at every state poll.
func (c *Console) linkAlive(ctx context.Context, g Grant) error {
	if g.LinkID == "" {
		return nil
	}
	// Expired links too, to tell the two apart.
	ls, err := c.links().ListShareLinks(ctx, g.VMID, time.Time{})
	if err != nil {
		return fmt.Errorf("share links of vm %s: %w", g.VMID, err)
	}
	for _, l := range ls {
		if l.ID == g.LinkID {
			if !c.cfg.Now().Before(l.ExpiresAt) {
				return errLinkTimeout
			}
			return nil
		}
	}
	return errLinkGone
}

// noLinks is the LinkStore of a console whose Store keeps no links.
type noLinks struct{}

var errNoLinks = fmt.Errorf("%w: share links are not kept by this server", vm.ErrInvalid)

func (noLinks) CreateShareLink(context.Context, store.ShareLink) error { return errNoLinks }
func (noLinks) GetShareLink(context.Context, string, time.Time) (store.ShareLink, error) {
	return store.ShareLink{}, store.ErrNotFound
}
func (noLinks) ListShareLinks(context.Context, string, time.Time) ([]store.ShareLink, error) {
	return nil, nil
}
func (noLinks) DeleteShareLink(context.Context, string, string) error { return store.ErrNotFound }
