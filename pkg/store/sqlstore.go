package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
)

// sqlStore implements Store over either backend with one set of SQL.
type sqlStore struct {
	db    db // a countingDB bumping vc.gen
	dl    dialect
	views viewSQL
	vc    *viewCache
	// listener, on PostgreSQL, keeps vc in step with the other nodes' writes.
	listener *viewListener
}

// newSQLStore wraps d so its writes invalidate the view cache; the cache
// is live at once unless a listener will make it so.
func newSQLStore(d db, dl dialect, live bool) *sqlStore {
	vc := newViewCache(ViewCacheTTL, live)
	return &sqlStore{db: countingDB{db: d, gen: &vc.gen}, dl: dl, views: newViewSQL(dl), vc: vc}
}

var _ Store = (*sqlStore)(nil)

// now is the store's clock for updated_at and event times; callers that
// care pass their own times in the rows they create.
func now() time.Time { return time.Now().UTC() }

const userCols = `id, email, password_hash, admin, verified, disabled,
	quota_vms, quota_cpus, quota_memory_mb, quota_disk_gb,
	used_vms, used_cpus, used_memory_mb, used_disk_gb, created_at`

func scanUser(s scanner) (User, error) {
	var u User
	err := s.Scan(&u.ID, &u.Email, &u.PasswordHash, &u.Admin, &u.Verified, &u.Disabled,
		&u.Quota.VMs, &u.Quota.CPUs, &u.Quota.MemoryMB, &u.Quota.DiskGB,
		&u.Usage.VMs, &u.Usage.CPUs, &u.Usage.MemoryMB, &u.Usage.DiskGB, &u.CreatedAt)
	return u, err
}

// notFound turns "no rows" into ErrNotFound naming the object.
func notFound(err error, what string) error {
	if isNoRows(err) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// mustAffect reports ErrNotFound when an UPDATE matched no row.
func mustAffect(n int64, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

func (s *sqlStore) CreateUser(ctx context.Context, u User) error {
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now()
	}
	_, err := s.db.exec(ctx, `INSERT INTO users (`+userCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, 0, 0, 0, $11)`,
		u.ID, strings.ToLower(u.Email), u.PasswordHash, u.Admin, u.Verified, u.Disabled,
		u.Quota.VMs, u.Quota.CPUs, u.Quota.MemoryMB, u.Quota.DiskGB, u.CreatedAt)
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.ID, err)
	}
	return nil
}

func (s *sqlStore) GetUser(ctx context.Context, id string) (User, error) {
	u, err := scanUser(s.db.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id))
	if err != nil {
		return User{}, notFound(err, "user "+id)
	}
	return u, nil
}

func (s *sqlStore) GetUserByEmail(ctx context.Context, email string) (User, error) {
	u, err := scanUser(s.db.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE email = $1`, strings.ToLower(email)))
	if err != nil {
		return User{}, notFound(err, "user "+email)
	}
	return u, nil
}

func (s *sqlStore) ListUsers(ctx context.Context) ([]User, error) {
	rs, err := s.db.query(ctx, `SELECT `+userCols+` FROM users ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rs.Close()
	var out []User
	for rs.Next() {
		u, err := scanUser(rs)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

func (s *sqlStore) SetVerified(ctx context.Context, userID string) error {
	n, err := s.db.exec(ctx, `UPDATE users SET verified = $2 WHERE id = $1`, userID, true)
	return mustAffect(n, err, "verify user "+userID)
}

func (s *sqlStore) SetPasswordHash(ctx context.Context, userID, hash string) error {
	n, err := s.db.exec(ctx, `UPDATE users SET password_hash = $2 WHERE id = $1`, userID, hash)
	return mustAffect(n, err, "set password of user "+userID)
}

func (s *sqlStore) SetDisabled(ctx context.Context, userID string, disabled bool) error {
	n, err := s.db.exec(ctx, `UPDATE users SET disabled = $2 WHERE id = $1`, userID, disabled)
	return mustAffect(n, err, "set disabled of user "+userID)
}

func (s *sqlStore) SetQuota(ctx context.Context, userID string, q api.Quota) error {
	n, err := s.db.exec(ctx, `UPDATE users SET quota_vms = $2, quota_cpus = $3, quota_memory_mb = $4, quota_disk_gb = $5
		WHERE id = $1`, userID, q.VMs, q.CPUs, q.MemoryMB, q.DiskGB)
	return mustAffect(n, err, "set quota of user "+userID)
}

func (s *sqlStore) CreateToken(ctx context.Context, t Token) error {
	_, err := s.db.exec(ctx, `INSERT INTO tokens (hash, kind, user_id, expires_at) VALUES ($1, $2, $3, $4)`,
		t.Hash, t.Kind, t.UserID, t.ExpiresAt)
	if err != nil {
		return fmt.Errorf("create %s token for user %s: %w", t.Kind, t.UserID, err)
	}
	return nil
}

func (s *sqlStore) ConsumeToken(ctx context.Context, kind, hash string, at time.Time) (Token, error) {
	var t Token
	// One statement, so two concurrent consumers cannot both get the token.
	err := s.db.queryRow(ctx, `DELETE FROM tokens WHERE hash = $1 AND kind = $2 AND expires_at > $3
		RETURNING hash, kind, user_id, expires_at`, hash, kind, at).
		Scan(&t.Hash, &t.Kind, &t.UserID, &t.ExpiresAt)
	if err != nil {
		return Token{}, notFound(err, "consume "+kind+" token")
	}
	return t, nil
}

const sessionCols = `id, user_id, kind, created_at, expires_at, revoked_at`

func (s *sqlStore) CreateSession(ctx context.Context, se Session) error {
	if se.CreatedAt.IsZero() {
		se.CreatedAt = now()
	}
	_, err := s.db.exec(ctx, `INSERT INTO sessions (`+sessionCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		se.ID, se.UserID, se.Kind, se.CreatedAt, se.ExpiresAt, se.RevokedAt)
	if err != nil {
		return fmt.Errorf("create session for user %s: %w", se.UserID, err)
	}
	return nil
}

func (s *sqlStore) GetSession(ctx context.Context, id string) (Session, error) {
	var se Session
	err := s.db.queryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = $1`, id).
		Scan(&se.ID, &se.UserID, &se.Kind, &se.CreatedAt, &se.ExpiresAt, &se.RevokedAt)
	if err != nil {
		// The id is a bearer secret: keep it out of errors and logs.
		return Session{}, notFound(err, "session")
	}
	return se, nil
}

func (s *sqlStore) RevokeSession(ctx context.Context, id string, at time.Time) error {
	// COALESCE keeps the first revocation time when revoked twice.
	n, err := s.db.exec(ctx, `UPDATE sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1`, id, at)
	return mustAffect(n, err, "revoke session")
}

func (s *sqlStore) RevokeUserSessions(ctx context.Context, userID, exceptID string, at time.Time) ([]string, error) {
	rs, err := s.db.query(ctx, `UPDATE sessions SET revoked_at = $3
		WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL RETURNING id`, userID, exceptID, at)
	if err != nil {
		return nil, fmt.Errorf("revoke sessions of user %s: %w", userID, err)
	}
	defer rs.Close()
	var ids []string
	for rs.Next() {
		var id string
		if err := rs.Scan(&id); err != nil {
			return nil, fmt.Errorf("revoke sessions of user %s: %w", userID, err)
		}
		ids = append(ids, id)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("revoke sessions of user %s: %w", userID, err)
	}
	return ids, nil
}

const vmCols = `id, owner_id, name, template, cpu, memory_mb, disk_gb, user_data,
	state, desired, node, message, created_at, updated_at,
	expires_at, idle_stop_s, last_active_at, ready, addresses,
	ssh_keys, host_keys, network`

// scanVM scans vmCols, then the row's further columns into extra (the views').
func scanVM(s scanner, extra ...any) (VM, error) {
	var v VM
	var state, desired, addrs, sshKeys, hostKeys string
	var idleS int64
	dest := make([]any, 0, 22+len(extra))
	dest = append(dest, &v.ID, &v.OwnerID, &v.Name, &v.Template, &v.CPU, &v.MemoryMB, &v.DiskGB, &v.UserData,
		&state, &desired, &v.Node, &v.Message, &v.CreatedAt, &v.UpdatedAt,
		&v.ExpiresAt, &idleS, &v.LastActiveAt, &v.Ready, &addrs, &sshKeys, &hostKeys, &v.Network)
	err := s.Scan(append(dest, extra...)...)
	v.State, v.Desired = api.State(state), api.DesiredState(desired)
	v.IdleStop = time.Duration(idleS) * time.Second
	v.SSHKeys, v.HostKeys = splitKeys(sshKeys), splitKeys(hostKeys)
	if err == nil && addrs != "" && addrs != "[]" {
		if jerr := json.Unmarshal([]byte(addrs), &v.Addresses); jerr != nil {
			return v, fmt.Errorf("addresses of vm %s: %w", v.ID, jerr)
		}
	}
	return v, err
}

func (s *sqlStore) CreateVM(ctx context.Context, v VM) error {
	_, err := s.CreateVMPlaced(ctx, v, nil)
	return err
}

func (s *sqlStore) CreateVMPlaced(ctx context.Context, v VM, place Placer) (VM, error) {
	if v.CreatedAt.IsZero() {
		v.CreatedAt = now()
	}
	if v.UpdatedAt.IsZero() {
		v.UpdatedAt = v.CreatedAt
	}
	err := s.db.inTx(ctx, func(q querier) error {
		// The WHERE clause is the admission check: concurrent creates
		// serialise on the user's row and each sees the others' usage.
		n, err := q.exec(ctx, `UPDATE users SET
				used_vms = used_vms + 1, used_cpus = used_cpus + $2,
				used_memory_mb = used_memory_mb + $3, used_disk_gb = used_disk_gb + $4
			WHERE id = $1 AND used_vms + 1 <= quota_vms AND used_cpus + $2 <= quota_cpus
				AND used_memory_mb + $3 <= quota_memory_mb AND used_disk_gb + $4 <= quota_disk_gb`,
			v.OwnerID, v.CPU, v.MemoryMB, v.DiskGB)
		if err != nil {
			return fmt.Errorf("admit: %w", err)
		}
		if n == 0 {
			return s.quotaError(ctx, q, v)
		}
		if place != nil {
			if v.Node, err = s.place(ctx, q, place); err != nil {
				return err
			}
		}
		if _, err := q.exec(ctx, `INSERT INTO vms (`+vmCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, '[]', $19, $20, $21)`,
			v.ID, v.OwnerID, v.Name, v.Template, v.CPU, v.MemoryMB, v.DiskGB, v.UserData,
			string(v.State), string(v.Desired), v.Node, v.Message, v.CreatedAt, v.UpdatedAt,
			v.ExpiresAt, int64(v.IdleStop/time.Second), v.LastActiveAt, false,
			joinKeys(v.SSHKeys), joinKeys(v.HostKeys), v.Network); err != nil {
			return err
		}
		if err := addEvent(ctx, q, v.ID, v.CreatedAt, v.State, v.Message); err != nil {
			return err
		}
		return s.addChange(ctx, q, v.OwnerID, v.ID, v.Name, v.State, v.Desired, v.Message, false, v.CreatedAt)
	})
	if err != nil {
		return VM{}, fmt.Errorf("create vm %s for user %s: %w", v.Name, v.OwnerID, err)
	}
	return v, nil
}

// place runs a Placer under the placement lock. The lock is taken after
// the owner's row, as every create does, so creates cannot deadlock on it;
// the nodes' usage is read after it, so it includes every placement that
// committed before.
func (s *sqlStore) place(ctx context.Context, q querier, place Placer) (string, error) {
	if s.dl.placeLock != "" {
		if _, err := q.exec(ctx, s.dl.placeLock); err != nil {
			return "", fmt.Errorf("take placement lock: %w", err)
		}
	}
	nodes, err := listNodes(ctx, q)
	if err != nil {
		return "", err
	}
	usage, err := nodeUsage(ctx, q)
	if err != nil {
		return "", err
	}
	return place(nodes, usage)
}

// quotaError explains why admission failed: a missing owner, or the first
// limit the VM would pass.
func (s *sqlStore) quotaError(ctx context.Context, q querier, v VM) error {
	u, err := scanUser(q.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, v.OwnerID))
	if err != nil {
		return notFound(err, "owner")
	}
	checks := []struct {
		what, unit        string
		used, want, limit int
	}{
		{"vms", "", u.Usage.VMs, 1, u.Quota.VMs},
		{"cpu", "", u.Usage.CPUs, v.CPU, u.Quota.CPUs},
		{"memory", "MB", u.Usage.MemoryMB, v.MemoryMB, u.Quota.MemoryMB},
		{"disk", "GB", u.Usage.DiskGB, v.DiskGB, u.Quota.DiskGB},
	}
	for _, c := range checks {
		if c.used+c.want > c.limit {
			return &QuotaError{Resource: c.what, Unit: c.unit, Asked: c.want, Left: max(c.limit-c.used, 0), Limit: c.limit}
		}
	}
	return ErrQuotaExceeded
}

func addEvent(ctx context.Context, q querier, vmID string, at time.Time, st api.State, msg string) error {
	if _, err := q.exec(ctx, `INSERT INTO vm_events (vm_id, time, state, message) VALUES ($1, $2, $3, $4)`,
		vmID, at, string(st), msg); err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	return nil
}

// addChange appends to the change feed; it must be the transaction's last
// statement, since on PostgreSQL it holds the feed's lock until commit.
func (s *sqlStore) addChange(ctx context.Context, q querier, ownerID, vmID, name string,
	st api.State, d api.DesiredState, msg string, ready bool, at time.Time) error {
	if s.dl.changeLock != "" {
		if _, err := q.exec(ctx, s.dl.changeLock); err != nil {
			return fmt.Errorf("take change feed lock: %w", err)
		}
	}
	if _, err := q.exec(ctx, `INSERT INTO changes (owner_id, vm_id, vm_name, state, desired, message, time, ready)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, ownerID, vmID, name, string(st), string(d), msg, at, ready); err != nil {
		return fmt.Errorf("record change: %w", err)
	}
	return nil
}

func (s *sqlStore) GetVM(ctx context.Context, id string) (VM, error) {
	v, err := scanVM(s.db.queryRow(ctx, `SELECT `+vmCols+` FROM vms WHERE id = $1`, id))
	if err != nil {
		return VM{}, notFound(err, "vm "+id)
	}
	return v, nil
}

func (s *sqlStore) GetVMByName(ctx context.Context, ownerID, name string) (VM, error) {
	v, err := scanVM(s.db.queryRow(ctx, `SELECT `+vmCols+` FROM vms WHERE owner_id = $1 AND name = $2`, ownerID, name))
	if err != nil {
		return VM{}, notFound(err, "vm "+name)
	}
	return v, nil
}

func (s *sqlStore) ListVMs(ctx context.Context, ownerID string) ([]VM, error) {
	// Two texts, not "$1 = '' OR owner_id = $1": a prepared statement's
	// generic plan for that cannot use the owner index.
	q, args := `SELECT `+vmCols+` FROM vms ORDER BY created_at, id`, []any(nil)
	if ownerID != "" {
		q, args = `SELECT `+vmCols+` FROM vms WHERE owner_id = $1 ORDER BY created_at, id`, []any{ownerID}
	}
	rs, err := s.db.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list vms: %w", err)
	}
	defer rs.Close()
	var out []VM
	for rs.Next() {
		v, err := scanVM(rs)
		if err != nil {
			return nil, fmt.Errorf("list vms: %w", err)
		}
		out = append(out, v)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("list vms: %w", err)
	}
	return out, nil
}

func (s *sqlStore) SetDesired(ctx context.Context, id string, d api.DesiredState) (VM, error) {
	var v VM
	at := now()
	err := s.db.inTx(ctx, func(q querier) error {
		var err error
		v, err = scanVM(q.queryRow(ctx, `UPDATE vms SET desired = $2, updated_at = $3 WHERE id = $1 RETURNING `+vmCols,
			id, string(d), at))
		if err != nil {
			return notFound(err, "vm")
		}
		return s.addChange(ctx, q, v.OwnerID, v.ID, v.Name, v.State, v.Desired, v.Message, v.Ready, at)
	})
	if err != nil {
		return VM{}, fmt.Errorf("set desired state of vm %s: %w", id, err)
	}
	return v, nil
}

func (s *sqlStore) SetState(ctx context.Context, id string, st api.State, message string) (VM, error) {
	var v VM
	at := now()
	err := s.db.inTx(ctx, func(q querier) error {
		var err error
		v, err = scanVM(q.queryRow(ctx, `UPDATE vms SET state = $2, message = $3, updated_at = $4,
			ready = CASE WHEN state = 'running' AND $2 = 'running' THEN ready ELSE $5 END,
			addresses = CASE WHEN state = 'running' AND $2 = 'running' THEN addresses ELSE '[]' END
			WHERE id = $1 RETURNING `+vmCols,
			id, string(st), message, at, false))
		if err != nil {
			return notFound(err, "vm")
		}
		if err := addEvent(ctx, q, id, at, st, message); err != nil {
			return err
		}
		return s.addChange(ctx, q, v.OwnerID, v.ID, v.Name, v.State, v.Desired, v.Message, v.Ready, at)
	})
	if err != nil {
		return VM{}, fmt.Errorf("set state of vm %s: %w", id, err)
	}
	return v, nil
}

func (s *sqlStore) SetGuest(ctx context.Context, id string, ready bool, addresses []string, message string) (VM, error) {
	if addresses == nil {
		addresses = []string{}
	}
	addrs, err := json.Marshal(addresses)
	if err != nil {
		return VM{}, fmt.Errorf("set guest of vm %s: %w", id, err)
	}
	var v VM
	at := now()
	err = s.db.inTx(ctx, func(q querier) error {
		var err error
		v, err = scanVM(q.queryRow(ctx, `UPDATE vms SET ready = $2, addresses = $3, updated_at = $4
			WHERE id = $1 RETURNING `+vmCols, id, ready, string(addrs), at))
		if err != nil {
			return notFound(err, "vm")
		}
		if message == "" {
			return nil
		}
		if err := addEvent(ctx, q, id, at, v.State, message); err != nil {
			return err
		}
		return s.addChange(ctx, q, v.OwnerID, v.ID, v.Name, v.State, v.Desired, message, v.Ready, at)
	})
	if err != nil {
		return VM{}, fmt.Errorf("set guest of vm %s: %w", id, err)
	}
	return v, nil
}

func (s *sqlStore) SetNode(ctx context.Context, id, node string) error {
	n, err := s.db.exec(ctx, `UPDATE vms SET node = $2, updated_at = $3 WHERE id = $1`, id, node, now())
	return mustAffect(n, err, "set node of vm "+id)
}

func (s *sqlStore) DeleteVM(ctx context.Context, id string) error {
	err := s.db.inTx(ctx, func(q querier) error {
		var owner, name, desired string
		var cpu, mem, disk int
		var snaps int
		if err := q.queryRow(ctx, `SELECT COALESCE(SUM(size_gb), 0) FROM snapshots WHERE vm_id = $1`, id).Scan(&snaps); err != nil {
			return fmt.Errorf("sum snapshots: %w", err)
		}
		err := q.queryRow(ctx, `DELETE FROM vms WHERE id = $1 RETURNING owner_id, name, desired, cpu, memory_mb, disk_gb`, id).
			Scan(&owner, &name, &desired, &cpu, &mem, &disk)
		if err != nil {
			return notFound(err, "vm")
		}
		disk += snaps // the snapshots' records go by ON DELETE CASCADE
		// Events go by ON DELETE CASCADE.
		n, err := q.exec(ctx, `UPDATE users SET used_vms = used_vms - 1, used_cpus = used_cpus - $2,
				used_memory_mb = used_memory_mb - $3, used_disk_gb = used_disk_gb - $4
			WHERE id = $1`, owner, cpu, mem, disk)
		if err := mustAffect(n, err, "release usage of user "+owner); err != nil {
			return err
		}
		return s.addChange(ctx, q, owner, id, name, api.StateDeleted, api.DesiredState(desired), "deleted", false, now())
	})
	if err != nil {
		return fmt.Errorf("delete vm %s: %w", id, err)
	}
	return nil
}

func (s *sqlStore) ListEvents(ctx context.Context, vmID string) ([]Event, error) {
	rs, err := s.db.query(ctx, `SELECT vm_id, time, state, message FROM vm_events WHERE vm_id = $1 ORDER BY id`, vmID)
	if err != nil {
		return nil, fmt.Errorf("list events of vm %s: %w", vmID, err)
	}
	defer rs.Close()
	var out []Event
	for rs.Next() {
		var e Event
		var st string
		if err := rs.Scan(&e.VMID, &e.Time, &st, &e.Message); err != nil {
			return nil, fmt.Errorf("list events of vm %s: %w", vmID, err)
		}
		e.State = api.State(st)
		out = append(out, e)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("list events of vm %s: %w", vmID, err)
	}
	if len(out) == 0 {
		// Every VM has its first event, so none means no such VM.
		if _, err := s.GetVM(ctx, vmID); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
	}
	return out, nil
}

const changeCols = `id, owner_id, vm_id, vm_name, state, desired, message, time, ready`

func (s *sqlStore) ListChanges(ctx context.Context, ownerID string, afterID int64, limit int) ([]Change, error) {
	if limit <= 0 || limit > MaxChangesPerList {
		limit = MaxChangesPerList
	}
	// Two statements rather than "$2 = '' OR owner_id = $2", so each uses
	// its own index: the primary key, or (owner_id, id).
	var (
		rs  rows
		err error
	)
	if ownerID == "" {
		rs, err = s.db.query(ctx, `SELECT `+changeCols+` FROM changes WHERE id > $1 ORDER BY id LIMIT $2`, afterID, limit)
	} else {
		rs, err = s.db.query(ctx, `SELECT `+changeCols+` FROM changes WHERE owner_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
			ownerID, afterID, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("list changes after %d: %w", afterID, err)
	}
	defer rs.Close()
	var out []Change
	for rs.Next() {
		var c Change
		var st, desired string
		if err := rs.Scan(&c.ID, &c.OwnerID, &c.VMID, &c.VMName, &st, &desired, &c.Message, &c.Time, &c.Ready); err != nil {
			return nil, fmt.Errorf("list changes after %d: %w", afterID, err)
		}
		c.State, c.Desired = api.State(st), api.DesiredState(desired)
		out = append(out, c)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("list changes after %d: %w", afterID, err)
	}
	return out, nil
}

func (s *sqlStore) LastChangeID(ctx context.Context, ownerID string) (int64, error) {
	var id int64
	var err error
	if ownerID == "" {
		err = s.db.queryRow(ctx, `SELECT COALESCE(MAX(id), 0) FROM changes`).Scan(&id)
	} else {
		err = s.db.queryRow(ctx, `SELECT COALESCE(MAX(id), 0) FROM changes WHERE owner_id = $1`, ownerID).Scan(&id)
	}
	if err != nil {
		return 0, fmt.Errorf("last change id: %w", err)
	}
	return id, nil
}

func (s *sqlStore) Ping(ctx context.Context) error {
	if err := s.db.ping(ctx); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	return nil
}

func (s *sqlStore) Close() error {
	if s.listener != nil {
		s.listener.stop()
	}
	return s.db.close()
}
