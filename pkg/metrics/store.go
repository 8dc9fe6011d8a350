package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
)

// DB times store calls into db_query_duration_seconds{op}.
type DB struct {
	hist *prometheus.HistogramVec
}

// NewDB registers db_query_duration_seconds on reg.
func NewDB(reg prometheus.Registerer) (*DB, error) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "db_query_duration_seconds",
		Help:    "Latency of store calls (one call may run several statements in a transaction), by operation.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"op"})
	if err := reg.Register(h); err != nil {
		return nil, err
	}
	return &DB{hist: h}, nil
}

// Wrap returns s with every call timed. Methods added to store.Store later
// pass through untimed (the embedded Store) until they are listed here.
func (d *DB) Wrap(s store.Store) store.Store { return &timedStore{Store: s, d: d} }

type timedStore struct {
	store.Store
	d *DB
}

var _ store.Store = (*timedStore)(nil)

func (t *timedStore) since(op string, start time.Time) {
	t.d.hist.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (t *timedStore) CreateUser(ctx context.Context, u store.User) error {
	defer t.since("create_user", time.Now())
	return t.Store.CreateUser(ctx, u)
}

func (t *timedStore) GetUser(ctx context.Context, id string) (store.User, error) {
	defer t.since("get_user", time.Now())
	return t.Store.GetUser(ctx, id)
}

func (t *timedStore) GetUserByEmail(ctx context.Context, email string) (store.User, error) {
	defer t.since("get_user_by_email", time.Now())
	return t.Store.GetUserByEmail(ctx, email)
}

func (t *timedStore) ListUsers(ctx context.Context) ([]store.User, error) {
	defer t.since("list_users", time.Now())
	return t.Store.ListUsers(ctx)
}

func (t *timedStore) SetVerified(ctx context.Context, userID string) error {
	defer t.since("set_verified", time.Now())
	return t.Store.SetVerified(ctx, userID)
}

func (t *timedStore) SetPasswordHash(ctx context.Context, userID, hash string) error {
	defer t.since("set_password_hash", time.Now())
	return t.Store.SetPasswordHash(ctx, userID, hash)
}

func (t *timedStore) SetQuota(ctx context.Context, userID string, q api.Quota) error {
	defer t.since("set_quota", time.Now())
	return t.Store.SetQuota(ctx, userID, q)
}

func (t *timedStore) SetDisabled(ctx context.Context, userID string, disabled bool) error {
	defer t.since("set_disabled", time.Now())
	return t.Store.SetDisabled(ctx, userID, disabled)
}

func (t *timedStore) CreateToken(ctx context.Context, tok store.Token) error {
	defer t.since("create_token", time.Now())
	return t.Store.CreateToken(ctx, tok)
}

func (t *timedStore) ConsumeToken(ctx context.Context, kind, hash string, now time.Time) (store.Token, error) {
	defer t.since("consume_token", time.Now())
	return t.Store.ConsumeToken(ctx, kind, hash, now)
}

func (t *timedStore) CreateSession(ctx context.Context, s store.Session) error {
	defer t.since("create_session", time.Now())
	return t.Store.CreateSession(ctx, s)
}

func (t *timedStore) GetSession(ctx context.Context, id string) (store.Session, error) {
	defer t.since("get_session", time.Now())
	return t.Store.GetSession(ctx, id)
}

func (t *timedStore) RevokeSession(ctx context.Context, id string, now time.Time) error {
	defer t.since("revoke_session", time.Now())
	return t.Store.RevokeSession(ctx, id, now)
}

func (t *timedStore) RevokeUserSessions(ctx context.Context, userID, exceptID string, now time.Time) ([]string, error) {
	defer t.since("revoke_user_sessions", time.Now())
	return t.Store.RevokeUserSessions(ctx, userID, exceptID, now)
}

func (t *timedStore) CreateVM(ctx context.Context, v store.VM) error {
	defer t.since("create_vm", time.Now())
	return t.Store.CreateVM(ctx, v)
}

func (t *timedStore) CreateVMPlaced(ctx context.Context, v store.VM, place store.Placer) (store.VM, error) {
	defer t.since("create_vm", time.Now())
	return t.Store.CreateVMPlaced(ctx, v, place)
}

func (t *timedStore) GetVM(ctx context.Context, id string) (store.VM, error) {
	defer t.since("get_vm", time.Now())
	return t.Store.GetVM(ctx, id)
}

func (t *timedStore) GetVMByName(ctx context.Context, ownerID, name string) (store.VM, error) {
	defer t.since("get_vm_by_name", time.Now())
	return t.Store.GetVMByName(ctx, ownerID, name)
}

func (t *timedStore) ListVMs(ctx context.Context, ownerID string) ([]store.VM, error) {
	defer t.since("list_vms", time.Now())
	return t.Store.ListVMs(ctx, ownerID)
}

func (t *timedStore) SetDesired(ctx context.Context, id string, d api.DesiredState) (store.VM, error) {
	defer t.since("set_desired", time.Now())
	return t.Store.SetDesired(ctx, id, d)
}

func (t *timedStore) SetState(ctx context.Context, id string, s api.State, message string) (store.VM, error) {
	defer t.since("set_state", time.Now())
	return t.Store.SetState(ctx, id, s, message)
}

func (t *timedStore) SetNode(ctx context.Context, id, node string) error {
	defer t.since("set_node", time.Now())
	return t.Store.SetNode(ctx, id, node)
}

func (t *timedStore) SetGuest(ctx context.Context, id string, ready bool, addresses []string, message string) (store.VM, error) {
	defer t.since("set_guest", time.Now())
	return t.Store.SetGuest(ctx, id, ready, addresses, message)
}

func (t *timedStore) DeleteVM(ctx context.Context, id string) error {
	defer t.since("delete_vm", time.Now())
	return t.Store.DeleteVM(ctx, id)
}

func (t *timedStore) ListEvents(ctx context.Context, vmID string) ([]store.Event, error) {
	defer t.since("list_events", time.Now())
	return t.Store.ListEvents(ctx, vmID)
}

func (t *timedStore) ListChanges(ctx context.Context, ownerID string, afterID int64, limit int) ([]store.Change, error) {
	defer t.since("list_changes", time.Now())
	return t.Store.ListChanges(ctx, ownerID, afterID, limit)
}

func (t *timedStore) LastChangeID(ctx context.Context, ownerID string) (int64, error) {
	defer t.since("last_change_id", time.Now())
	return t.Store.LastChangeID(ctx, ownerID)
}

func (t *timedStore) Ping(ctx context.Context) error {
	defer t.since("ping", time.Now())
	return t.Store.Ping(ctx)
}
