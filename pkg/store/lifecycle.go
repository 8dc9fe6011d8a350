package store

import (
	"context"
	"fmt"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
)

// Lifetimes of VMs (issue 12): expiry, idle stop, per-user TTL limits.

func (s *sqlStore) SetExpiry(ctx context.Context, id string, at *time.Time) (VM, error) {
	if at != nil {
		t := at.UTC().Truncate(time.Microsecond)
		at = &t
	}
	v, err := scanVM(s.db.queryRow(ctx, `UPDATE vms SET expires_at = $2 WHERE id = $1 RETURNING `+vmCols, id, at))
	if err != nil {
		return VM{}, notFound(err, "set expiry of vm "+id)
	}
	return v, nil
}

func (s *sqlStore) TouchVM(ctx context.Context, id string, at time.Time) error {
	at = at.UTC().Truncate(time.Microsecond)
	// The condition keeps a late writer from moving the time back; an
	// unchanged row still proves the VM exists.
	if _, err := s.db.exec(ctx, `UPDATE vms SET last_active_at = $2
		WHERE id = $1 AND (last_active_at IS NULL OR last_active_at < $2)`, id, at); err != nil {
		return fmt.Errorf("touch vm %s: %w", id, err)
	}
	return nil
}

func (s *sqlStore) TTLLimits(ctx context.Context, userID string) (TTLLimits, error) {
	var maxS, defS int64
	if err := s.db.queryRow(ctx, `SELECT max_ttl_s, default_ttl_s FROM users WHERE id = $1`, userID).
		Scan(&maxS, &defS); err != nil {
		return TTLLimits{}, notFound(err, "ttl limits of user "+userID)
	}
	return TTLLimits{Max: time.Duration(maxS) * time.Second, Default: time.Duration(defS) * time.Second}, nil
}

func (s *sqlStore) SetTTLLimits(ctx context.Context, userID string, l TTLLimits) error {
	if l.Max < 0 || l.Default < 0 {
		return fmt.Errorf("ttl limits of user %s: negative", userID)
	}
	n, err := s.db.exec(ctx, `UPDATE users SET max_ttl_s = $2, default_ttl_s = $3 WHERE id = $1`,
		userID, int64(l.Max/time.Second), int64(l.Default/time.Second))
	return mustAffect(n, err, "set ttl limits of user "+userID)
}

func (s *sqlStore) ExpireVM(ctx context.Context, id string, at time.Time) (VM, bool, error) {
	var v VM
	expired := false
	err := s.db.inTx(ctx, func(q querier) error {
		var err error
		v, err = scanVM(q.queryRow(ctx, `UPDATE vms SET desired = $3, updated_at = $4
			WHERE id = $1 AND expires_at IS NOT NULL AND expires_at <= $2 AND desired <> $3
			RETURNING `+vmCols, id, at.UTC(), string(api.DesiredDeleted), now()))
		if isNoRows(err) {
			// Not expired (extended meanwhile, or being deleted), or gone.
			if v, err = scanVM(q.queryRow(ctx, `SELECT `+vmCols+` FROM vms WHERE id = $1`, id)); err != nil {
				return notFound(err, "vm")
			}
			return nil
		}
		if err != nil {
			return err
		}
		expired = true
		return s.addChange(ctx, q, v.OwnerID, v.ID, v.Name, v.State, v.Desired, v.Message, v.Ready, now())
	})
	if err != nil {
		return VM{}, false, fmt.Errorf("expire vm %s: %w", id, err)
	}
	return v, expired, nil
}
