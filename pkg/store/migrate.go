package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations
var migrationFS embed.FS

// dialect names one backend's migration set and the bits of SQL that differ.
type dialect struct {
	name string // directory under migrations/
	// createMigrations creates the bookkeeping table if it is missing.
	createMigrations string
	// lock, if set, serialises migrating processes for the rest of the
	// transaction. SQLite needs none: BEGIN IMMEDIATE already holds the
	// database's one write lock.
	lock string
	// changeLock, if set, is taken right before a change is recorded and
	// held to commit. PostgreSQL hands out identity values at insert time,
	// so two transactions could otherwise commit ids 8 and 7 in that order
	// and a feed reader that already passed 8 would never see 7. SQLite's
	// one writer at a time gives that order for free.
	changeLock string
	// placeLock, if set, serialises placements to commit (CreateVMPlaced):
	// on PostgreSQL, two creates would otherwise each read a node's usage
	// without the other's VM. SQLite's one writer serialises them already.
	placeLock string
	// The views' (views.go) JSON: jsonAgg is an aggregate of %s ordered
	// by %s, jsonObject the object builder, micros a time column %s as
	// microseconds since the epoch, boolInt a boolean column %s as 0 or 1.
	jsonAgg, jsonObject, micros, boolInt string
}

// migrationLockKey is an arbitrary constant: "vmd" in ASCII.
const migrationLockKey = 0x766d64

// changeLockKey is another: "vmdc".
const changeLockKey = 0x766d6463

// placeLockKey is another: "vmdp".
const placeLockKey = 0x766d6470

var (
	sqliteDialect = dialect{
		name: "sqlite",
		createMigrations: `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
		// Times are INTEGER microseconds and booleans 0 or 1 already.
		jsonAgg: "json_group_array(%s ORDER BY %s)", jsonObject: "json_object", micros: "%s", boolInt: "%s",
	}
	postgresDialect = dialect{
		name: "postgres",
		createMigrations: `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)`,
		lock:       fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", migrationLockKey),
		changeLock: fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", changeLockKey),
		placeLock:  fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", placeLockKey),
		// EXTRACT gives exact numeric seconds (PostgreSQL 14 on; a double
		// before, still within rounding of the microsecond).
		jsonAgg: "json_agg(%s ORDER BY %s)", jsonObject: "json_build_object",
		micros: "(EXTRACT(EPOCH FROM %s) * 1000000)::bigint", boolInt: "%s::int",
	}
)

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns a dialect's embedded migrations in version order.
// Files are named NNNN_description.sql.
func migrations(d dialect) ([]migration, error) {
	dir := path.Join("migrations", d.name)
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s/%s: name must start with a positive number and '_'", d.name, e.Name())
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(migrationFS, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// migrate applies the pending migrations in one transaction, so a failed
// migration leaves the schema as it was and concurrent Opens apply each
// migration exactly once.
func migrate(ctx context.Context, d db, dl dialect) error {
	all, err := migrations(dl)
	if err != nil {
		return err
	}
	return d.inTx(ctx, func(q querier) error {
		if dl.lock != "" {
			if _, err := q.exec(ctx, dl.lock); err != nil {
				return fmt.Errorf("take migration lock: %w", err)
			}
		}
		if _, err := q.exec(ctx, dl.createMigrations); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		applied := map[int]bool{}
		maxApplied := 0
		rs, err := q.query(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return fmt.Errorf("list applied migrations: %w", err)
		}
		for rs.Next() {
			var v int
			if err := rs.Scan(&v); err != nil {
				rs.Close()
				return fmt.Errorf("list applied migrations: %w", err)
			}
			applied[v] = true
			maxApplied = max(maxApplied, v)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return fmt.Errorf("list applied migrations: %w", err)
		}
		if n := len(all); n > 0 && maxApplied > all[n-1].version {
			return fmt.Errorf("database schema version %d is newer than this build knows (%d)", maxApplied, all[n-1].version)
		}
		for _, m := range all {
			if applied[m.version] {
				continue
			}
			if _, err := q.exec(ctx, m.sql); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.name, err)
			}
			if _, err := q.exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, m.name, time.Now().UTC()); err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
		}
		return nil
	})
}
