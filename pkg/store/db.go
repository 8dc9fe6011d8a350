package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// querier is what the SQL code needs from a connection or a transaction.
// Both backends take the same SQL text: modernc's SQLite binds $N by
// position, as PostgreSQL does.
type querier interface {
	exec(ctx context.Context, q string, args ...any) (rowsAffected int64, err error)
	query(ctx context.Context, q string, args ...any) (rows, error)
	queryRow(ctx context.Context, q string, args ...any) scanner
}

type scanner interface {
	Scan(dest ...any) error
}

type rows interface {
	scanner
	Next() bool
	Err() error
	Close()
}

// db is one backend's connection pool.
type db interface {
	querier
	// inTx runs f in a transaction that takes the write lock up front on
	// SQLite, so concurrent writers queue instead of failing with SQLITE_BUSY.
	inTx(ctx context.Context, f func(q querier) error) error
	ping(ctx context.Context) error
	close() error
}

// isNoRows reports the "no rows" error of either backend.
func isNoRows(err error) bool {
	return errors.Is(err, sql.ErrNoRows) || errors.Is(err, pgx.ErrNoRows)
}

// classify maps a driver error to a sentinel: ErrConflict (unique
// violation), ErrNotFound (foreign key violation: the referenced row is
// missing) or ErrUnavailable (the server or the connection went away). The
// driver's error is kept in the chain for logs; any other error is
// returned as it is.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "23505":
			return fmt.Errorf("%w: %w", ErrConflict, err)
		case pgErr.Code == "23503":
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		case pgUnavailable(pgErr.Code):
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		switch sqErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", ErrConflict, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return err
	}
	if connLost(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// pgUnavailable reports the SQLSTATEs that mean "not now" rather than "not
// this request": class 08 (connection exception), class 57 (operator
// intervention: 57P01 admin_shutdown when the server stops or a backend is
// terminated, 57P02 crash_shutdown, 57P03 cannot_connect_now while it
// starts) and 53300 too_many_connections.
func pgUnavailable(code string) bool {
	return strings.HasPrefix(code, "08") || strings.HasPrefix(code, "57") || code == "53300"
}

// connLost reports a connection that failed or closed under a call: pgx's
// closed connection and failed connect, an EOF from the server, or any
// network error. A cancelled or timed-out context is the caller's doing
// and stays as it is.
func connLost(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.Is(err, pgconn.ErrConnClosed) || errors.As(err, &ce) || errors.As(err, &ne) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// --- SQLite (database/sql) ---

// sqliteDB stores times as INTEGER microseconds since the epoch (UTC), the
// precision PostgreSQL keeps, so both backends round-trip the same value
// and ORDER BY works on numbers instead of formatted strings.
type sqliteDB struct {
	db *sql.DB
	// stmts holds the pool's prepared reads by SQL text: parsing a
	// statement cost SQLite more than running it on the read paths.
	// database/sql prepares each on a connection when it first runs there.
	stmts    sync.Map // string -> *sql.Stmt
	prepared atomic.Int32
}

// maxPrepared bounds stmts; the store's SQL texts are constants, far fewer.
const maxPrepared = 256

// reads is the querier for a query outside a transaction (the reads, and
// the writes with RETURNING): q prepared once.
// A text that does not prepare runs unprepared, so its error comes from
// running it as before.
func (s *sqliteDB) reads(ctx context.Context, q string) sqliteQ {
	if st, ok := s.stmts.Load(q); ok {
		return stmtQ{st.(*sql.Stmt)}
	}
	if s.prepared.Load() >= maxPrepared {
		return s.db
	}
	st, err := s.db.PrepareContext(ctx, q)
	if err != nil {
		return s.db
	}
	if prev, loaded := s.stmts.LoadOrStore(q, st); loaded {
		_ = st.Close()
		return stmtQ{prev.(*sql.Stmt)}
	}
	s.prepared.Add(1)
	return stmtQ{st}
}

// stmtQ runs a prepared statement; the text it is given is the statement's own.
type stmtQ struct{ st *sql.Stmt }

func (p stmtQ) ExecContext(ctx context.Context, _ string, args ...any) (sql.Result, error) {
	return p.st.ExecContext(ctx, args...)
}

func (p stmtQ) QueryContext(ctx context.Context, _ string, args ...any) (*sql.Rows, error) {
	return p.st.QueryContext(ctx, args...)
}

func (p stmtQ) QueryRowContext(ctx context.Context, _ string, args ...any) *sql.Row {
	return p.st.QueryRowContext(ctx, args...)
}

type sqliteQ interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

type sqliteQuerier struct{ q sqliteQ }

func sqliteArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case time.Time:
			out[i] = v.UnixMicro()
		case *time.Time:
			if v == nil {
				out[i] = nil
			} else {
				out[i] = v.UnixMicro()
			}
		default:
			out[i] = a
		}
	}
	return out
}

// microTime scans an INTEGER microsecond column into a UTC time.
type microTime struct{ t *time.Time }

func (m microTime) Scan(v any) error {
	switch x := v.(type) {
	case int64:
		*m.t = time.UnixMicro(x).UTC()
		return nil
	case nil:
		*m.t = time.Time{}
		return nil
	}
	return fmt.Errorf("scan time: unexpected %T", v)
}

// microTimePtr scans a nullable INTEGER microsecond column.
type microTimePtr struct{ t **time.Time }

func (m microTimePtr) Scan(v any) error {
	switch x := v.(type) {
	case int64:
		t := time.UnixMicro(x).UTC()
		*m.t = &t
		return nil
	case nil:
		*m.t = nil
		return nil
	}
	return fmt.Errorf("scan time: unexpected %T", v)
}

func sqliteDest(dest []any) []any {
	out := make([]any, len(dest))
	for i, d := range dest {
		switch v := d.(type) {
		case *time.Time:
			out[i] = microTime{v}
		case **time.Time:
			out[i] = microTimePtr{v}
		default:
			out[i] = d
		}
	}
	return out
}

type sqliteRow struct{ r *sql.Row }

func (r sqliteRow) Scan(dest ...any) error { return r.r.Scan(sqliteDest(dest)...) }

type sqliteRows struct{ r *sql.Rows }

func (r sqliteRows) Scan(dest ...any) error { return r.r.Scan(sqliteDest(dest)...) }
func (r sqliteRows) Next() bool             { return r.r.Next() }
func (r sqliteRows) Err() error             { return classify(r.r.Err()) }
func (r sqliteRows) Close()                 { _ = r.r.Close() }

func (s sqliteQuerier) exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := s.q.ExecContext(ctx, q, sqliteArgs(args)...)
	if err != nil {
		return 0, classify(err)
	}
	return res.RowsAffected()
}

func (s sqliteQuerier) query(ctx context.Context, q string, args ...any) (rows, error) {
	r, err := s.q.QueryContext(ctx, q, sqliteArgs(args)...)
	if err != nil {
		return nil, classify(err)
	}
	return sqliteRows{r}, nil
}

func (s sqliteQuerier) queryRow(ctx context.Context, q string, args ...any) scanner {
	return classifyingRow{sqliteRow{s.q.QueryRowContext(ctx, q, sqliteArgs(args)...)}}
}

func (s *sqliteDB) exec(ctx context.Context, q string, args ...any) (int64, error) {
	return sqliteQuerier{s.db}.exec(ctx, q, args...)
}

func (s *sqliteDB) query(ctx context.Context, q string, args ...any) (rows, error) {
	return sqliteQuerier{s.reads(ctx, q)}.query(ctx, q, args...)
}

func (s *sqliteDB) queryRow(ctx context.Context, q string, args ...any) scanner {
	return sqliteQuerier{s.reads(ctx, q)}.queryRow(ctx, q, args...)
}

func (s *sqliteDB) inTx(ctx context.Context, f func(q querier) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", classify(err))
	}
	if err := f(sqliteQuerier{tx}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", classify(err))
	}
	return nil
}

func (s *sqliteDB) ping(ctx context.Context) error { return s.db.PingContext(ctx) }
func (s *sqliteDB) close() error {
	s.stmts.Range(func(_, st any) bool { _ = st.(*sql.Stmt).Close(); return true })
	return s.db.Close()
}

// classifyingRow maps constraint errors raised by a statement with RETURNING.
type classifyingRow struct{ r scanner }

func (c classifyingRow) Scan(dest ...any) error { return classify(c.r.Scan(dest...)) }

// --- PostgreSQL (pgx) ---

type pgxQ interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type pgQuerier struct{ q pgxQ }

// utcTime converts timestamptz values, which pgx returns in time.Local, to UTC.
type utcTime struct{ t *time.Time }

func (u utcTime) Scan(v any) error {
	switch x := v.(type) {
	case time.Time:
		*u.t = x.UTC()
		return nil
	case nil:
		*u.t = time.Time{}
		return nil
	}
	return fmt.Errorf("scan time: unexpected %T", v)
}

type utcTimePtr struct{ t **time.Time }

func (u utcTimePtr) Scan(v any) error {
	switch x := v.(type) {
	case time.Time:
		t := x.UTC()
		*u.t = &t
		return nil
	case nil:
		*u.t = nil
		return nil
	}
	return fmt.Errorf("scan time: unexpected %T", v)
}

func pgDest(dest []any) []any {
	out := make([]any, len(dest))
	for i, d := range dest {
		switch v := d.(type) {
		case *time.Time:
			out[i] = utcTime{v}
		case **time.Time:
			out[i] = utcTimePtr{v}
		default:
			out[i] = d
		}
	}
	return out
}

type pgRow struct{ r pgx.Row }

func (r pgRow) Scan(dest ...any) error { return classify(r.r.Scan(pgDest(dest)...)) }

type pgRows struct{ r pgx.Rows }

func (r pgRows) Scan(dest ...any) error { return classify(r.r.Scan(pgDest(dest)...)) }
func (r pgRows) Next() bool             { return r.r.Next() }
func (r pgRows) Err() error             { return classify(r.r.Err()) }
func (r pgRows) Close()                 { r.r.Close() }

func (p pgQuerier) exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := p.q.Exec(ctx, q, args...)
	if err != nil {
		return 0, classify(err)
	}
	return tag.RowsAffected(), nil
}

func (p pgQuerier) query(ctx context.Context, q string, args ...any) (rows, error) {
	r, err := p.q.Query(ctx, q, args...)
	if err != nil {
		return nil, classify(err)
	}
	return pgRows{r}, nil
}

func (p pgQuerier) queryRow(ctx context.Context, q string, args ...any) scanner {
	return pgRow{p.q.QueryRow(ctx, q, args...)}
}

type pgDB struct {
	pool *pgxpool.Pool
}

func (p *pgDB) exec(ctx context.Context, q string, args ...any) (int64, error) {
	return pgQuerier{p.pool}.exec(ctx, q, args...)
}

func (p *pgDB) query(ctx context.Context, q string, args ...any) (rows, error) {
	return pgQuerier{p.pool}.query(ctx, q, args...)
}

func (p *pgDB) queryRow(ctx context.Context, q string, args ...any) scanner {
	return pgQuerier{p.pool}.queryRow(ctx, q, args...)
}

func (p *pgDB) inTx(ctx context.Context, f func(q querier) error) error {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", classify(err))
	}
	if err := f(pgQuerier{tx}); err != nil {
		// The context may already be cancelled; rollback still returns the
		// connection to a clean state or closes it.
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", classify(err))
	}
	return nil
}

func (p *pgDB) ping(ctx context.Context) error { return classify(p.pool.Ping(ctx)) }
func (p *pgDB) close() error                   { p.pool.Close(); return nil }

// --- write counting (the view cache's invalidation) ---

// countingDB bumps gen after every call that may have written to the
// database, once the database has it, whatever the call returned: an
// error (an ambiguous commit included) may still have written. The view
// cache (viewcache.go) serves nothing read before the last bump, so a
// write method added later cannot forget to invalidate it. Plain SELECTs
// outside a transaction are the only calls that do not count; inside
// inTx, the bump comes once the transaction has ended.
type countingDB struct {
	db
	gen *atomic.Uint64
}

func (c countingDB) exec(ctx context.Context, q string, args ...any) (int64, error) {
	defer c.gen.Add(1)
	return c.db.exec(ctx, q, args...)
}

func (c countingDB) query(ctx context.Context, q string, args ...any) (rows, error) {
	if plainSelect(q) {
		return c.db.query(ctx, q, args...)
	}
	r, err := c.db.query(ctx, q, args...)
	if err != nil {
		c.gen.Add(1)
		return nil, err
	}
	return countingRows{r, c.gen}, nil
}

// queryRow bumps after Scan: pgx runs the statement there.
func (c countingDB) queryRow(ctx context.Context, q string, args ...any) scanner {
	if plainSelect(q) {
		return c.db.queryRow(ctx, q, args...)
	}
	return countingRow{c.db.queryRow(ctx, q, args...), c.gen}
}

func (c countingDB) inTx(ctx context.Context, f func(q querier) error) error {
	defer c.gen.Add(1)
	return c.db.inTx(ctx, f)
}

type countingRow struct {
	r   scanner
	gen *atomic.Uint64
}

func (c countingRow) Scan(dest ...any) error {
	defer c.gen.Add(1)
	return c.r.Scan(dest...)
}

// countingRows bumps on Close: a statement with RETURNING may still be
// running while its rows are read.
type countingRows struct {
	rows
	gen *atomic.Uint64
}

func (c countingRows) Close() {
	defer c.gen.Add(1)
	c.rows.Close()
}

// plainSelect reports a statement that starts with SELECT, which the
// store's SQL only uses to read (a WITH may hold an UPDATE, so it counts
// as a write).
func plainSelect(q string) bool {
	q = strings.TrimLeft(q, " \t\r\n")
	return len(q) > len("SELECT") && strings.EqualFold(q[:len("SELECT")], "SELECT") &&
		strings.ContainsRune(" \t\r\n", rune(q[len("SELECT")]))
}
