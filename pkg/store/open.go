package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// sqliteBusyTimeoutMS bounds how long a writer waits for another
// connection's write transaction before failing with SQLITE_BUSY.
const sqliteBusyTimeoutMS = 30000

// sqliteIdleConns is how many SQLite connections the pool keeps open
// between bursts of requests.
const sqliteIdleConns = 16

// Open connects to the store and applies any pending migrations.
// An empty databaseURL selects the embedded SQLite database at sqlitePath
// (its directory is created with mode 0700); a postgres:// or postgresql://
// URL selects PostgreSQL.
func Open(ctx context.Context, databaseURL, sqlitePath string) (Store, error) {
	switch {
	case databaseURL == "":
		return openSQLite(ctx, sqlitePath)
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		return openPostgres(ctx, databaseURL)
	}
	scheme, _, ok := strings.Cut(databaseURL, "://")
	if !ok {
		scheme = "(none)"
	}
	return nil, fmt.Errorf("open store: unsupported database url scheme %q: want postgres:// or postgresql://, or an empty url for embedded sqlite", scheme)
}

// sqliteDSN asks for WAL (readers do not block the writer), a busy
// timeout, foreign keys, and BEGIN IMMEDIATE for every transaction: a
// deferred transaction that reads first and then writes cannot wait for
// the lock and fails with SQLITE_BUSY at once, whatever the timeout.
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeoutMS))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	return path + "?" + q.Encode()
}

func openSQLite(ctx context.Context, path string) (Store, error) {
	if path == "" {
		return nil, errors.New("open sqlite store: no database path")
	}
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open sqlite store %s: path must not contain '?'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	// Create the file ourselves so it is private; SQLite gives its -wal and
	// -shm files the same mode as the database file.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	_ = f.Close()

	sqlDB, err := sql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	// database/sql keeps 2 idle connections by default: with more requests
	// at once than that, connections were closed and opened (the pragmas
	// run, the schema read, the statements prepared again) all the time.
	sqlDB.SetMaxIdleConns(sqliteIdleConns)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	d := &sqliteDB{db: sqlDB}
	if err := d.ping(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if err := migrate(ctx, d, sqliteDialect); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	return newSQLStore(d, sqliteDialect, true), nil
}

func openPostgres(ctx context.Context, databaseURL string) (Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx's parse errors do not repeat the password.
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	d := &pgDB{pool: pool}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	if err := d.ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", where, err)
	}
	if err := migrate(ctx, d, postgresDialect); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", where, err)
	}
	s := newSQLStore(d, postgresDialect, false)
	s.listener = startViewListener(cfg.ConnConfig, s.vc)
	return s, nil
}
