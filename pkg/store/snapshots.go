package store

import (
	"context"
	"fmt"
	"time"
)

// Snapshot is a stored snapshot of a VM's disk (and, with Memory, of its
// running state). A record is inserted Pending before the qcow2 snapshot is
// taken and marked made after; pending records are never shown and are
// removed by the next vmd when the one that wrote them stopped.
type Snapshot struct {
	VMID        string
	Name        string
	SizeGB      int // counted in the owner's used disk while the record exists
	Memory      bool
	Consistency string // "stopped", "frozen", "crash" or "memory"
	Pending     bool
	CreatedAt   time.Time
}

// SnapshotStore keeps VM snapshots' records and their share of the disk quota.
type SnapshotStore interface {
	// CreateSnapshot admits s.SizeGB against the VM owner's disk quota and
	// inserts s as pending, in one transaction: a *QuotaError ("disk: …")
	// when it does not fit, ErrConflict when the VM has a snapshot of that
	// name, ErrNotFound when the VM is gone.
	CreateSnapshot(ctx context.Context, s Snapshot) error
	// FinishSnapshot marks a pending snapshot made, with its consistency.
	FinishSnapshot(ctx context.Context, vmID, name, consistency string) error
	// DeleteSnapshot removes the record and gives its size back to the owner.
	DeleteSnapshot(ctx context.Context, vmID, name string) error
	// ListSnapshots lists a VM's snapshots, pending ones too, oldest first.
	ListSnapshots(ctx context.Context, vmID string) ([]Snapshot, error)
	// ListOwnerSnapshots lists the snapshots of one owner's VMs (every VM's
	// when ownerID is ""), pending ones too, oldest first.
	ListOwnerSnapshots(ctx context.Context, ownerID string) ([]Snapshot, error)
	// SetSnapshotKeep sets how many snapshots the VM keeps (0: no limit).
	SetSnapshotKeep(ctx context.Context, vmID string, keep int) error
	// SnapshotKeep is the VM's retention (0 when never set).
	SnapshotKeep(ctx context.Context, vmID string) (int, error)
}

func (s *sqlStore) CreateSnapshot(ctx context.Context, sn Snapshot) error {
	if sn.CreatedAt.IsZero() {
		sn.CreatedAt = now()
	}
	err := s.db.inTx(ctx, func(q querier) error {
		var owner string
		if err := q.queryRow(ctx, `SELECT owner_id FROM vms WHERE id = $1`, sn.VMID).Scan(&owner); err != nil {
			return notFound(err, "vm "+sn.VMID)
		}
		// The WHERE clause is the admission, as in CreateVMPlaced.
		n, err := q.exec(ctx, `UPDATE users SET used_disk_gb = used_disk_gb + $2
			WHERE id = $1 AND used_disk_gb + $2 <= quota_disk_gb`, owner, sn.SizeGB)
		if err != nil {
			return fmt.Errorf("admit: %w", err)
		}
		if n == 0 {
			u, err := scanUser(q.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, owner))
			if err != nil {
				return notFound(err, "owner")
			}
			return &QuotaError{Resource: "disk", Unit: "GB", Asked: sn.SizeGB,
				Left: max(u.Quota.DiskGB-u.Usage.DiskGB, 0), Limit: u.Quota.DiskGB}
		}
		_, err = q.exec(ctx, `INSERT INTO snapshots (vm_id, name, size_gb, memory, consistency, pending, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, sn.VMID, sn.Name, sn.SizeGB, sn.Memory, sn.Consistency, true, sn.CreatedAt)
		return classify(err)
	})
	if err != nil {
		return fmt.Errorf("create snapshot %s of vm %s: %w", sn.Name, sn.VMID, err)
	}
	return nil
}

func (s *sqlStore) FinishSnapshot(ctx context.Context, vmID, name, consistency string) error {
	n, err := s.db.exec(ctx, `UPDATE snapshots SET pending = $3, consistency = $4 WHERE vm_id = $1 AND name = $2`,
		vmID, name, false, consistency)
	return mustAffect(n, err, "finish snapshot "+name+" of vm "+vmID)
}

func (s *sqlStore) DeleteSnapshot(ctx context.Context, vmID, name string) error {
	err := s.db.inTx(ctx, func(q querier) error {
		var size int
		if err := q.queryRow(ctx, `DELETE FROM snapshots WHERE vm_id = $1 AND name = $2 RETURNING size_gb`,
			vmID, name).Scan(&size); err != nil {
			return notFound(err, "snapshot "+name)
		}
		n, err := q.exec(ctx, `UPDATE users SET used_disk_gb = used_disk_gb - $2
			WHERE id = (SELECT owner_id FROM vms WHERE id = $1)`, vmID, size)
		return mustAffect(n, err, "release snapshot usage")
	})
	if err != nil {
		return fmt.Errorf("delete snapshot %s of vm %s: %w", name, vmID, err)
	}
	return nil
}

func (s *sqlStore) ListSnapshots(ctx context.Context, vmID string) ([]Snapshot, error) {
	rs, err := s.db.query(ctx, `SELECT vm_id, name, size_gb, memory, consistency, pending, created_at
		FROM snapshots WHERE vm_id = $1 ORDER BY created_at, name`, vmID)
	if err != nil {
		return nil, fmt.Errorf("list snapshots of vm %s: %w", vmID, err)
	}
	return scanSnapshots(rs, "vm "+vmID)
}

func (s *sqlStore) ListOwnerSnapshots(ctx context.Context, ownerID string) ([]Snapshot, error) {
	rs, err := s.db.query(ctx, `SELECT s.vm_id, s.name, s.size_gb, s.memory, s.consistency, s.pending, s.created_at
		FROM snapshots s JOIN vms v ON v.id = s.vm_id WHERE $1 = '' OR v.owner_id = $1
		ORDER BY s.created_at, s.vm_id, s.name`, ownerID)
	if err != nil {
		return nil, fmt.Errorf("list snapshots of user %s: %w", ownerID, err)
	}
	return scanSnapshots(rs, "user "+ownerID)
}

func scanSnapshots(rs rows, of string) ([]Snapshot, error) {
	defer rs.Close()
	var out []Snapshot
	for rs.Next() {
		var sn Snapshot
		if err := rs.Scan(&sn.VMID, &sn.Name, &sn.SizeGB, &sn.Memory, &sn.Consistency, &sn.Pending, &sn.CreatedAt); err != nil {
			return nil, fmt.Errorf("list snapshots of %s: %w", of, err)
		}
		out = append(out, sn)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("list snapshots of %s: %w", of, err)
	}
	return out, nil
}

func (s *sqlStore) SetSnapshotKeep(ctx context.Context, vmID string, keep int) error {
	_, err := s.db.exec(ctx, `INSERT INTO snapshot_retention (vm_id, keep) VALUES ($1, $2)
		ON CONFLICT (vm_id) DO UPDATE SET keep = excluded.keep`, vmID, keep)
	if err = classify(err); err != nil {
		return fmt.Errorf("set snapshot retention of vm %s: %w", vmID, err)
	}
	return nil
}

func (s *sqlStore) SnapshotKeep(ctx context.Context, vmID string) (int, error) {
	var keep int
	err := s.db.queryRow(ctx, `SELECT keep FROM snapshot_retention WHERE vm_id = $1`, vmID).Scan(&keep)
	if isNoRows(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("snapshot retention of vm %s: %w", vmID, err)
	}
	return keep, nil
}
