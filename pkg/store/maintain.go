package store

import (
	"context"
	"fmt"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
)

func (s *sqlStore) RecountUsage(ctx context.Context) ([]UsageFix, error) {
	users, err := s.ListUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("recount usage: %w", err)
	}
	var fixes []UsageFix
	for _, u := range users {
		fix, err := s.recountUser(ctx, u.ID)
		if err != nil {
			return fixes, fmt.Errorf("recount usage: %w", err)
		}
		if fix != nil {
			fixes = append(fixes, *fix)
		}
	}
	return fixes, nil
}

// recountUser fixes one owner's counters. It locks the owner's row first:
// creates and deletes change the counters under that lock, so the sums
// read after it agree with the counters of everything that committed.
func (s *sqlStore) recountUser(ctx context.Context, id string) (*UsageFix, error) {
	var fix *UsageFix
	err := s.db.inTx(ctx, func(q querier) error {
		var was, now api.Quota
		err := q.queryRow(ctx, `UPDATE users SET used_vms = used_vms WHERE id = $1
			RETURNING used_vms, used_cpus, used_memory_mb, used_disk_gb`, id).
			Scan(&was.VMs, &was.CPUs, &was.MemoryMB, &was.DiskGB)
		if isNoRows(err) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return fmt.Errorf("user %s: %w", id, err)
		}
		err = q.queryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(cpu), 0), COALESCE(SUM(memory_mb), 0),
			COALESCE(SUM(disk_gb), 0) + COALESCE((SELECT SUM(s.size_gb) FROM snapshots s JOIN vms v ON v.id = s.vm_id
				WHERE v.owner_id = $1), 0) FROM vms WHERE owner_id = $1`, id).
			Scan(&now.VMs, &now.CPUs, &now.MemoryMB, &now.DiskGB)
		if err != nil {
			return fmt.Errorf("sum vms of user %s: %w", id, err)
		}
		if now == was {
			return nil
		}
		if _, err := q.exec(ctx, `UPDATE users SET used_vms = $2, used_cpus = $3, used_memory_mb = $4, used_disk_gb = $5
			WHERE id = $1`, id, now.VMs, now.CPUs, now.MemoryMB, now.DiskGB); err != nil {
			return fmt.Errorf("fix usage of user %s: %w", id, err)
		}
		fix = &UsageFix{UserID: id, Was: was, Now: now}
		return nil
	})
	return fix, err
}

func (s *sqlStore) PruneChanges(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.db.exec(ctx, `DELETE FROM changes WHERE time < $1 AND id < (SELECT MAX(id) FROM changes)`, before.UTC())
	if err != nil {
		return 0, fmt.Errorf("prune changes before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return n, nil
}
