package store

import (
	"context"
	"fmt"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
)

// Node is one vmd of a cluster: every vmd sharing a database registers
// itself with its capacity and heartbeats.
type Node struct {
	Name         string
	AdvertiseURL string // where the other nodes reach its API
	CPUs         int
	MemoryMB     int
	DiskGB       int
	Draining     bool // no new VMs are placed on it
	HeartbeatAt  time.Time
	StartedAt    time.Time
}

// NodeStore keeps the cluster's members; Store includes it.
type NodeStore interface {
	// UpsertNode records n as it starts; a node's draining flag survives
	// its restarts, so n.Draining is ignored.
	UpsertNode(ctx context.Context, n Node) error
	// Heartbeat moves a node's heartbeat_at; ErrNotFound when it never registered.
	Heartbeat(ctx context.Context, name string, at time.Time) error
	GetNode(ctx context.Context, name string) (Node, error)
	// ListNodes lists every node by name.
	ListNodes(ctx context.Context) ([]Node, error)
	SetDraining(ctx context.Context, name string, draining bool) error
	// NodeUsage sums the VMs recorded on each node (those being deleted
	// included: they hold their resources until gone), by node name.
	NodeUsage(ctx context.Context) (map[string]api.Quota, error)
}

const nodeCols = `name, advertise_url, cpus, memory_mb, disk_gb, draining, heartbeat_at, started_at`

func scanNode(s scanner) (Node, error) {
	var n Node
	err := s.Scan(&n.Name, &n.AdvertiseURL, &n.CPUs, &n.MemoryMB, &n.DiskGB, &n.Draining, &n.HeartbeatAt, &n.StartedAt)
	return n, err
}

func (s *sqlStore) UpsertNode(ctx context.Context, n Node) error {
	if n.StartedAt.IsZero() {
		n.StartedAt = now()
	}
	if n.HeartbeatAt.IsZero() {
		n.HeartbeatAt = n.StartedAt
	}
	_, err := s.db.exec(ctx, `INSERT INTO nodes (`+nodeCols+`) VALUES ($1, $2, $3, $4, $5, FALSE, $6, $7)
		ON CONFLICT (name) DO UPDATE SET advertise_url = excluded.advertise_url, cpus = excluded.cpus,
			memory_mb = excluded.memory_mb, disk_gb = excluded.disk_gb,
			heartbeat_at = excluded.heartbeat_at, started_at = excluded.started_at`,
		n.Name, n.AdvertiseURL, n.CPUs, n.MemoryMB, n.DiskGB, n.HeartbeatAt.UTC(), n.StartedAt.UTC())
	if err != nil {
		return fmt.Errorf("upsert node %s: %w", n.Name, err)
	}
	return nil
}

func (s *sqlStore) Heartbeat(ctx context.Context, name string, at time.Time) error {
	n, err := s.db.exec(ctx, `UPDATE nodes SET heartbeat_at = $2 WHERE name = $1`, name, at.UTC())
	return mustAffect(n, err, "heartbeat of node "+name)
}

func (s *sqlStore) GetNode(ctx context.Context, name string) (Node, error) {
	n, err := scanNode(s.db.queryRow(ctx, `SELECT `+nodeCols+` FROM nodes WHERE name = $1`, name))
	if err != nil {
		return Node{}, notFound(err, "node "+name)
	}
	return n, nil
}

func (s *sqlStore) ListNodes(ctx context.Context) ([]Node, error) { return listNodes(ctx, s.db) }

func listNodes(ctx context.Context, q querier) ([]Node, error) {
	rs, err := q.query(ctx, `SELECT `+nodeCols+` FROM nodes ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	defer rs.Close()
	var out []Node
	for rs.Next() {
		n, err := scanNode(rs)
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		out = append(out, n)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}

func (s *sqlStore) SetDraining(ctx context.Context, name string, draining bool) error {
	n, err := s.db.exec(ctx, `UPDATE nodes SET draining = $2 WHERE name = $1`, name, draining)
	return mustAffect(n, err, "drain node "+name)
}

func (s *sqlStore) NodeUsage(ctx context.Context) (map[string]api.Quota, error) {
	return nodeUsage(ctx, s.db)
}

func nodeUsage(ctx context.Context, q querier) (map[string]api.Quota, error) {
	rs, err := q.query(ctx, `SELECT node, COUNT(*), COALESCE(SUM(cpu), 0), COALESCE(SUM(memory_mb), 0),
		COALESCE(SUM(disk_gb), 0) FROM vms GROUP BY node`)
	if err != nil {
		return nil, fmt.Errorf("node usage: %w", err)
	}
	defer rs.Close()
	out := map[string]api.Quota{}
	for rs.Next() {
		var node string
		var q api.Quota
		if err := rs.Scan(&node, &q.VMs, &q.CPUs, &q.MemoryMB, &q.DiskGB); err != nil {
			return nil, fmt.Errorf("node usage: %w", err)
		}
		out[node] = q
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("node usage: %w", err)
	}
	return out, nil
}
