package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

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

// Link is a stored share link.
type Link struct {
	ID        string
	VMID      string
	OwnerID   string // who made it: the sessions it opens count as theirs
	Hash      string // of its secret
	CreatedAt time.Time
	ExpiresAt time.Time
}

// LinkStore keeps share links; MemoryTokens and RedisTokens are ones.
type LinkStore interface {
	PutLink(ctx context.Context, l Link) error
	// GetLink finds a live link by its secret's hash; ErrTokenInvalid when none.
	GetLink(ctx context.Context, hash string) (Link, error)
	ListLinks(ctx context.Context, vmID string) ([]Link, error)
	// DeleteLink removes a link; false when it was not there.
	DeleteLink(ctx context.Context, vmID, id string) (bool, error)
}

func (c *Console) links() LinkStore {
	if ls, ok := c.cfg.Tokens.(LinkStore); ok {
		return ls
	}
	return c.memLinks // a TokenStore that keeps no links
}

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
	l := Link{ID: "lnk_" + strings.ToLower(idPart[:12]), VMID: v.ID, OwnerID: caller.ID, Hash: onetime.Hash(secret),
		CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := c.links().PutLink(ctx, l); err != nil {
		return api.ShareLink{}, fmt.Errorf("store share link of vm %s: %w", v.ID, err)
	}
	out := l.toAPI()
	// The secret rides in the fragment, which browsers never send on.
	out.URL = c.base + "/console/" + url.PathEscape(v.ID) + "#link=" + secret
	return out, nil
}

func (l Link) toAPI() api.ShareLink {
	return api.ShareLink{ID: l.ID, VMID: l.VMID, CreatedAt: l.CreatedAt, ExpiresAt: l.ExpiresAt}
}

// Links lists the live share links of v.
func (c *Console) Links(ctx context.Context, caller store.User, v store.VM) ([]api.ShareLink, error) {
	if err := vm.Authorize(caller, v); err != nil {
		return nil, fmt.Errorf("share links: %w", err)
	}
	ls, err := c.links().ListLinks(ctx, v.ID)
	if err != nil {
		return nil, fmt.Errorf("share links of vm %s: %w", v.ID, err)
	}
	out := []api.ShareLink{}
	for _, l := range ls {
		out = append(out, l.toAPI())
	}
	return out, nil
}

// RevokeLink deletes a share link of v and closes the sessions it opened.
func (c *Console) RevokeLink(ctx context.Context, caller store.User, v store.VM, id string) error {
	if err := vm.Authorize(caller, v); err != nil {
		return fmt.Errorf("share link: %w", err)
	}
	ok, err := c.links().DeleteLink(ctx, v.ID, id)
	if err != nil {
		return fmt.Errorf("revoke share link %s: %w", id, err)
	}
	c.CloseLink(v.ID, id)
	if !ok {
		return fmt.Errorf("share link %s of vm %s: %w", id, v.Name, store.ErrNotFound)
	}
	return nil
}

// LinkToken makes a view-only console token from a share link's secret.
func (c *Console) LinkToken(ctx context.Context, vmID, secret string) (api.ConsoleResponse, error) {
	if secret == "" {
		return api.ConsoleResponse{}, ErrTokenInvalid
	}
	l, err := c.links().GetLink(ctx, onetime.Hash(secret))
	if err != nil {
		return api.ConsoleResponse{}, err
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

// MemoryTokens' links are in-process: lost on restart (a cluster's Redis keeps them).

// PutLink implements LinkStore.
func (m *MemoryTokens) PutLink(_ context.Context, l Link) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.links == nil {
		m.links = map[string]Link{}
	}
	m.links[l.Hash] = l
	return nil
}

// GetLink implements LinkStore.
func (m *MemoryTokens) GetLink(_ context.Context, hash string) (Link, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.links[hash]
	if !ok || !m.now().Before(l.ExpiresAt) {
		return Link{}, ErrTokenInvalid
	}
	return l, nil
}

// ListLinks implements LinkStore.
func (m *MemoryTokens) ListLinks(_ context.Context, vmID string) ([]Link, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Link
	now := m.now()
	for h, l := range m.links {
		if !now.Before(l.ExpiresAt) {
			delete(m.links, h)
			continue
		}
		if l.VMID == vmID {
			out = append(out, l)
		}
	}
	sortLinks(out)
	return out, nil
}

// DeleteLink implements LinkStore.
func (m *MemoryTokens) DeleteLink(_ context.Context, vmID, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for h, l := range m.links {
		if l.VMID == vmID && l.ID == id {
			delete(m.links, h)
			return true, nil
		}
	}
	return false, nil
}

func sortLinks(ls []Link) {
	sort.Slice(ls, func(i, j int) bool { return ls[i].CreatedAt.Before(ls[j].CreatedAt) })
}

// Redis: prefix+"clink:"+hash holds a link (expiring with it), and
// prefix+"clinks:"+vmID is a hash of id → link, the VM's list, pruned of
// expired entries when read.

// PutLink implements LinkStore.
func (r *RedisTokens) PutLink(ctx context.Context, l Link) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	ttl := l.ExpiresAt.Sub(r.now())
	pipe := r.rdb.TxPipeline()
	pipe.Set(ctx, r.prefix+"clink:"+l.Hash, b, ttl)
	pipe.HSet(ctx, r.prefix+"clinks:"+l.VMID, l.ID, b)
	pipe.Expire(ctx, r.prefix+"clinks:"+l.VMID, MaxLinkTTL)
	_, err = pipe.Exec(ctx)
	return err
}

// GetLink implements LinkStore.
func (r *RedisTokens) GetLink(ctx context.Context, hash string) (Link, error) {
	b, err := r.rdb.Get(ctx, r.prefix+"clink:"+hash).Bytes()
	if errors.Is(err, redis.Nil) {
		return Link{}, ErrTokenInvalid
	}
	if err != nil {
		return Link{}, err
	}
	var l Link
	if err := json.Unmarshal(b, &l); err != nil {
		return Link{}, err
	}
	return l, nil
}

// ListLinks implements LinkStore.
func (r *RedisTokens) ListLinks(ctx context.Context, vmID string) ([]Link, error) {
	all, err := r.rdb.HGetAll(ctx, r.prefix+"clinks:"+vmID).Result()
	if err != nil {
		return nil, err
	}
	var out []Link
	now := r.now()
	for id, b := range all {
		var l Link
		if err := json.Unmarshal([]byte(b), &l); err != nil || !now.Before(l.ExpiresAt) {
			r.rdb.HDel(ctx, r.prefix+"clinks:"+vmID, id)
			continue
		}
		out = append(out, l)
	}
	sortLinks(out)
	return out, nil
}

// DeleteLink implements LinkStore.
func (r *RedisTokens) DeleteLink(ctx context.Context, vmID, id string) (bool, error) {
	b, err := r.rdb.HGet(ctx, r.prefix+"clinks:"+vmID, id).Bytes()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var l Link
	if err := json.Unmarshal(b, &l); err != nil {
		return false, err
	}
	pipe := r.rdb.TxPipeline()
	pipe.Del(ctx, r.prefix+"clink:"+l.Hash)
	pipe.HDel(ctx, r.prefix+"clinks:"+vmID, id)
	_, err = pipe.Exec(ctx)
	return err == nil, err
}

// linkAlive refuses a share link's token once the link is revoked.
func (c *Console) linkAlive(ctx context.Context, g Grant) error {
	if g.LinkID == "" {
		return nil
	}
	ls, err := c.links().ListLinks(ctx, g.VMID)
	if err != nil {
		return fmt.Errorf("share links of vm %s: %w", g.VMID, err)
	}
	for _, l := range ls {
		if l.ID == g.LinkID {
			return nil
		}
	}
	return fmt.Errorf("%w: its share link was revoked", ErrTokenInvalid)
}
