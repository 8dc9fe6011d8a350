package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SSHKey is one of a user's SSH public keys, as validated by pkg/sshkey.
type SSHKey struct {
	UserID      string
	Name        string
	Key         string // authorized_keys form, re-marshalled: "TYPE BASE64 [COMMENT]"
	Fingerprint string // "SHA256:…"
	CreatedAt   time.Time
}

// Refusals of AddSSHKey; the first two unwrap to ErrConflict.
var (
	ErrSSHKeyNameTaken = fmt.Errorf("an ssh key of that name exists: %w", ErrConflict)
	ErrSSHKeyDuplicate = fmt.Errorf("that ssh key is added already: %w", ErrConflict)
	ErrTooManySSHKeys  = errors.New("too many ssh keys")
)

// AddSSHKey implements Store. The count and both uniqueness checks share
// the insert's transaction; the table's constraints back them.
func (s *sqlStore) AddSSHKey(ctx context.Context, k SSHKey, limit int) error {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = now()
	}
	err := s.db.inTx(ctx, func(q querier) error {
		// Lock the owner's row first, as CreateVM does, so two adds serialise.
		if n, err := q.exec(ctx, `UPDATE users SET id = id WHERE id = $1`, k.UserID); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("user %s: %w", k.UserID, ErrNotFound)
		}
		var count, sameName, samePrint int
		if err := q.queryRow(ctx, `SELECT count(*),
				COALESCE(SUM(CASE WHEN name = $2 THEN 1 ELSE 0 END), 0),
				COALESCE(SUM(CASE WHEN fingerprint = $3 THEN 1 ELSE 0 END), 0)
			FROM ssh_keys WHERE user_id = $1`, k.UserID, k.Name, k.Fingerprint).Scan(&count, &sameName, &samePrint); err != nil {
			return err
		}
		switch {
		case sameName > 0:
			return ErrSSHKeyNameTaken
		case samePrint > 0:
			return ErrSSHKeyDuplicate
		case count >= limit:
			return fmt.Errorf("%w: %d of %d", ErrTooManySSHKeys, count, limit)
		}
		_, err := q.exec(ctx, `INSERT INTO ssh_keys (user_id, name, key, fingerprint, created_at)
			VALUES ($1, $2, $3, $4, $5)`, k.UserID, k.Name, k.Key, k.Fingerprint, k.CreatedAt)
		return err
	})
	if err != nil {
		return fmt.Errorf("add ssh key %s of user %s: %w", k.Name, k.UserID, err)
	}
	return nil
}

// ListSSHKeys implements Store.
func (s *sqlStore) ListSSHKeys(ctx context.Context, userID string) ([]SSHKey, error) {
	rs, err := s.db.query(ctx, `SELECT user_id, name, key, fingerprint, created_at FROM ssh_keys
		WHERE user_id = $1 ORDER BY created_at, name`, userID)
	if err != nil {
		return nil, fmt.Errorf("list ssh keys of user %s: %w", userID, err)
	}
	defer rs.Close()
	var out []SSHKey
	for rs.Next() {
		var k SSHKey
		if err := rs.Scan(&k.UserID, &k.Name, &k.Key, &k.Fingerprint, &k.CreatedAt); err != nil {
			return nil, fmt.Errorf("list ssh keys of user %s: %w", userID, err)
		}
		out = append(out, k)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("list ssh keys of user %s: %w", userID, err)
	}
	return out, nil
}

// DeleteSSHKey implements Store.
func (s *sqlStore) DeleteSSHKey(ctx context.Context, userID, name string) error {
	n, err := s.db.exec(ctx, `DELETE FROM ssh_keys WHERE user_id = $1 AND name = $2`, userID, name)
	return mustAffect(n, err, "delete ssh key "+name+" of user "+userID)
}

// SetHostKeys implements Store.
func (s *sqlStore) SetHostKeys(ctx context.Context, vmID string, keys []string) error {
	n, err := s.db.exec(ctx, `UPDATE vms SET host_keys = $2 WHERE id = $1`, vmID, joinKeys(keys))
	return mustAffect(n, err, "set host keys of vm "+vmID)
}

// joinKeys and splitKeys store a list of keys as one key a line; a key
// never holds a newline (pkg/sshkey re-marshals every one).
func joinKeys(keys []string) string { return strings.Join(keys, "\n") }

func splitKeys(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
