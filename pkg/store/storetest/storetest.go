// Package storetest gives tests a fresh, empty store on each backend, so
// the store, server and end-to-end tests all run against SQLite and
// PostgreSQL alike.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vmdhq/vmd/pkg/store"
)

// PostgresEnv names the variable holding the URL of the PostgreSQL server
// tests create their databases on; the user must be allowed to CREATE DATABASE.
const PostgresEnv = "VMD_TEST_POSTGRES_URL"

// DefaultPostgresURL is used when PostgresEnv is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Backend is one store backend tests can run on.
type Backend struct {
	Name string // "sqlite" or "postgres"
	// New returns store.Open's arguments for a fresh, empty database that is
	// removed when t ends. Use it when the store is opened elsewhere, such as
	// by a vmd process started with --database-url and --data-dir.
	New func(t testing.TB) (databaseURL, sqlitePath string)
}

// Backends returns every backend, SQLite first.
func Backends() []Backend {
	return []Backend{
		{Name: "sqlite", New: func(t testing.TB) (string, string) { t.Helper(); return "", SQLitePath(t) }},
		{Name: "postgres", New: func(t testing.TB) (string, string) { t.Helper(); return PostgresURL(t), "" }},
	}
}

// Open opens a fresh, empty store of this backend, closed when t ends.
func (b Backend) Open(t testing.TB) store.Store {
	t.Helper()
	dbURL, path := b.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := store.Open(ctx, dbURL, path)
	if err != nil {
		t.Fatalf("open %s store: %v", b.Name, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close %s store: %v", b.Name, err)
		}
	})
	return s
}

// Run runs f as one subtest per backend.
func Run(t *testing.T, f func(t *testing.T, b Backend)) {
	t.Helper()
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) { f(t, b) })
	}
}

// SQLitePath returns the path of a not yet existing SQLite file in a
// directory removed when t ends.
func SQLitePath(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "data", "vmd.db")
}

// PostgresURL creates a database of its own for t on the server named by
// VMD_TEST_POSTGRES_URL (DefaultPostgresURL when unset) and returns its
// URL. The database is dropped, with any connections left open to it,
// when t ends. The test fails when the server is unreachable: PostgreSQL
// is part of what is tested, not optional.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(PostgresEnv)
	if admin == "" {
		admin = DefaultPostgresURL
	}
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("%s must be a postgres:// URL, got %q", PostgresEnv, admin)
	}
	dbURL, drop, err := CreateDatabase(context.Background(), admin, "vmd_test_")
	if err != nil {
		t.Fatalf("postgres at %s (set %s to change) is needed by this test and is not usable: %v",
			u.Redacted(), PostgresEnv, err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	return dbURL
}

// CreateDatabase creates a database named prefix plus random hex on the
// server at adminURL and returns its URL and a function that drops it,
// with any connections left open to it. Benchmarks use it too.
func CreateDatabase(ctx context.Context, adminURL, prefix string) (string, func() error, error) {
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("admin url: %w", err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := prefix + hex.EncodeToString(b[:])
	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	ident := pgx.Identifier{name}.Sanitize()
	if err := exec("CREATE DATABASE " + ident); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u.Path = "/" + name
	drop := func() error {
		if err := exec("DROP DATABASE IF EXISTS " + ident + " WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	return u.String(), drop, nil
}

// TerminateBackends ends every other connection to dbURL's database with
// pg_terminate_backend, as a PostgreSQL restart or failover would, and
// returns how many it ended.
func TerminateBackends(t testing.TB, dbURL string) int {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect to terminate backends: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid()) AS t`, strings.TrimPrefix(u.Path, "/")).Scan(&n); err != nil {
		t.Fatalf("terminate backends: %v", err)
	}
	return n
}
