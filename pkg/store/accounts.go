package store

import (
	"context"
	"fmt"
)

// DeleteUser implements Store. The VM check and the delete share one
// transaction, so a VM created meanwhile cannot be left without an owner
// (the foreign key would refuse it anyway; this names the reason).
func (s *sqlStore) DeleteUser(ctx context.Context, userID string) error {
	err := s.db.inTx(ctx, func(q querier) error {
		var n int
		if err := q.queryRow(ctx, `SELECT count(*) FROM vms WHERE owner_id = $1`, userID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: the user still owns %d VMs", ErrConflict, n)
		}
		// Sessions, tokens and changes go by ON DELETE CASCADE.
		affected, err := q.exec(ctx, `DELETE FROM users WHERE id = $1`, userID)
		return mustAffect(affected, err, "user "+userID)
	})
	if err != nil {
		return fmt.Errorf("delete user %s: %w", userID, err)
	}
	return nil
}

// DeleteUserTokens implements Store.
func (s *sqlStore) DeleteUserTokens(ctx context.Context, userID, kind string) error {
	if _, err := s.db.exec(ctx, `DELETE FROM tokens WHERE user_id = $1 AND kind = $2`, userID, kind); err != nil {
		return fmt.Errorf("delete %s tokens of user %s: %w", kind, userID, err)
	}
	return nil
}
