package store

import (
	"context"
	"fmt"
	"time"
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
