package store

import (
	"context"
	"fmt"
	"time"
)

// ShareLink is a view-only console link of one VM. Only the hash of its
// secret is stored; it is revoked by deleting it.
type ShareLink struct {
	ID        string
	VMID      string
	OwnerID   string // who made it: the sessions it opens count as theirs
	Hash      string // SHA-256 of its secret (pkg/onetime.Hash)
	CreatedAt time.Time
	ExpiresAt time.Time
}

const shareLinkCols = `id, vm_id, owner_id, hash, created_at, expires_at`

func scanShareLink(r scanner) (ShareLink, error) {
	var l ShareLink
	err := r.Scan(&l.ID, &l.VMID, &l.OwnerID, &l.Hash, &l.CreatedAt, &l.ExpiresAt)
	return l, err
}

// CreateShareLink implements Store. The VM's expired links go in the same
// transaction, so a VM's rows stay few without a sweeper.
func (s *sqlStore) CreateShareLink(ctx context.Context, l ShareLink) error {
	err := s.db.inTx(ctx, func(q querier) error {
		if _, err := q.exec(ctx, `DELETE FROM share_links WHERE vm_id = $1 AND expires_at <= $2`, l.VMID, l.CreatedAt); err != nil {
			return err
		}
		_, err := q.exec(ctx, `INSERT INTO share_links (`+shareLinkCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
			l.ID, l.VMID, l.OwnerID, l.Hash, l.CreatedAt, l.ExpiresAt)
		return err
	})
	if err != nil {
		return fmt.Errorf("create share link of vm %s: %w", l.VMID, err)
	}
	return nil
}

// GetShareLink implements Store.
func (s *sqlStore) GetShareLink(ctx context.Context, hash string, now time.Time) (ShareLink, error) {
	l, err := scanShareLink(s.db.queryRow(ctx, `SELECT `+shareLinkCols+` FROM share_links
		WHERE hash = $1 AND expires_at > $2`, hash, now))
	if isNoRows(err) {
		return ShareLink{}, fmt.Errorf("share link: %w", ErrNotFound)
	}
	if err != nil {
		return ShareLink{}, fmt.Errorf("get share link: %w", err)
	}
	return l, nil
}

// ListShareLinks implements Store.
func (s *sqlStore) ListShareLinks(ctx context.Context, vmID string, now time.Time) ([]ShareLink, error) {
	rs, err := s.db.query(ctx, `SELECT `+shareLinkCols+` FROM share_links
		WHERE vm_id = $1 AND expires_at > $2 ORDER BY created_at, id`, vmID, now)
	if err != nil {
		return nil, fmt.Errorf("list share links of vm %s: %w", vmID, err)
	}
	defer rs.Close()
	var out []ShareLink
	for rs.Next() {
		l, err := scanShareLink(rs)
		if err != nil {
			return nil, fmt.Errorf("list share links of vm %s: %w", vmID, err)
		}
		out = append(out, l)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("list share links of vm %s: %w", vmID, err)
	}
	return out, nil
}

// DeleteShareLink implements Store.
func (s *sqlStore) DeleteShareLink(ctx context.Context, vmID, id string) error {
	n, err := s.db.exec(ctx, `DELETE FROM share_links WHERE vm_id = $1 AND id = $2`, vmID, id)
	return mustAffect(n, err, "delete share link "+id+" of vm "+vmID)
}
