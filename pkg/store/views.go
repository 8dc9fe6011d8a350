package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
)

// VMKey names a VM: by ID, or, when ID is "", by its owner and name.
type VMKey struct{ ID, OwnerID, Name string }

func (k VMKey) String() string {
	if k.ID != "" {
		return "vm " + k.ID
	}
	return "vm " + k.Name
}

// VMView is a VM with what the API shows beside it.
type VMView struct {
	VM
	Events    []Event    // oldest first; GetVMView only (ListVMViews leaves it nil)
	Snapshots []Snapshot // pending ones too, oldest first
}

// ViewStore reads what the API's VM answers show, each in one statement:
// one round trip on PostgreSQL instead of one for the VM, one for its
// events and one for its snapshots. Answers are cached until the next
// write (viewcache.go) for at most ViewCacheTTL; each call returns its own
// copy.
type ViewStore interface {
	// GetVMView returns a VM with its events and its snapshots;
	// ErrNotFound when there is no such VM.
	GetVMView(ctx context.Context, k VMKey) (VMView, error)
	// ListVMViews lists one owner's VMs (every VM when ownerID is ""), by
	// creation time, each with its snapshots.
	ListVMViews(ctx context.Context, ownerID string) ([]VMView, error)
}

// viewSQL holds a dialect's texts for the views, built once.
type viewSQL struct {
	getByID, getByName, listAll, listOwner string
}

// newViewSQL builds the view statements: the VM's columns and, from
// correlated subqueries, its events and snapshots as JSON arrays of
// objects. Times are microseconds since the epoch and booleans 0 or 1 on
// both backends (SQLite stores them so; PostgreSQL converts), so one
// decoder reads either.
func newViewSQL(d dialect) viewSQL {
	agg := func(obj, order string) string { return fmt.Sprintf(d.jsonAgg, obj, order) }
	events := `(SELECT ` + agg(d.jsonObject+`('t', `+fmt.Sprintf(d.micros, "e.time")+`, 's', e.state, 'm', e.message)`, "e.id") +
		` FROM vm_events e WHERE e.vm_id = v.id)`
	snaps := `(SELECT ` + agg(d.jsonObject+`('n', s.name, 'g', s.size_gb, 'y', `+fmt.Sprintf(d.boolInt, "s.memory")+
		`, 'c', s.consistency, 'p', `+fmt.Sprintf(d.boolInt, "s.pending")+`, 't', `+fmt.Sprintf(d.micros, "s.created_at")+`)`,
		"s.created_at, s.name") + ` FROM snapshots s WHERE s.vm_id = v.id)`
	// Most VMs have no snapshots: SQLite skips its aggregate's sort then.
	snaps = `CASE WHEN EXISTS (SELECT 1 FROM snapshots s WHERE s.vm_id = v.id) THEN ` + snaps + ` END`
	get := `SELECT ` + vmCols + `, ` + events + `, ` + snaps + ` FROM vms v WHERE `
	list := `SELECT ` + vmCols + `, ` + snaps + ` FROM vms v `
	return viewSQL{
		getByID:   get + `v.id = $1`,
		getByName: get + `v.owner_id = $1 AND v.name = $2`,
		// Two texts, as in ListVMs: a generic plan of "$1 = '' OR ..."
		// cannot use the owner index.
		listAll:   list + `ORDER BY v.created_at, v.id`,
		listOwner: list + `WHERE v.owner_id = $1 ORDER BY v.created_at, v.id`,
	}
}

func (s *sqlStore) GetVMView(ctx context.Context, k VMKey) (VMView, error) {
	g, cached := s.vc.begin()
	if cached {
		if v, ok := s.vc.getView(k, g); ok {
			return v, nil
		}
	}
	v, err := s.readVMView(ctx, k)
	if err == nil && cached {
		s.vc.putView(k, g, cloneView(v))
	}
	return v, err
}

func (s *sqlStore) readVMView(ctx context.Context, k VMKey) (VMView, error) {
	q, args := s.views.getByID, []any{k.ID}
	if k.ID == "" {
		q, args = s.views.getByName, []any{k.OwnerID, k.Name}
	}
	var evs, snaps []byte
	v, err := scanVM(s.db.queryRow(ctx, q, args...), &evs, &snaps)
	if err != nil {
		return VMView{}, notFound(err, k.String())
	}
	out := VMView{VM: v}
	if out.Events, err = decodeEvents(v.ID, evs); err == nil {
		out.Snapshots, err = decodeSnapshots(v.ID, snaps)
	}
	if err != nil {
		return VMView{}, fmt.Errorf("%s: %w", k, err)
	}
	return out, nil
}

func (s *sqlStore) ListVMViews(ctx context.Context, ownerID string) ([]VMView, error) {
	g, cached := s.vc.begin()
	if cached {
		if vs, ok := s.vc.getList(ownerID, g); ok {
			return vs, nil
		}
	}
	vs, err := s.readVMViews(ctx, ownerID)
	if err == nil && cached && len(vs) <= maxCachedListLen {
		s.vc.putList(ownerID, g, cloneViews(vs))
	}
	return vs, err
}

func (s *sqlStore) readVMViews(ctx context.Context, ownerID string) ([]VMView, error) {
	q, args := s.views.listAll, []any(nil)
	if ownerID != "" {
		q, args = s.views.listOwner, []any{ownerID}
	}
	rs, err := s.db.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list vms: %w", err)
	}
	defer rs.Close()
	var out []VMView
	for rs.Next() {
		var snaps []byte
		v, err := scanVM(rs, &snaps)
		if err != nil {
			return nil, fmt.Errorf("list vms: %w", err)
		}
		vv := VMView{VM: v}
		if vv.Snapshots, err = decodeSnapshots(v.ID, snaps); err != nil {
			return nil, fmt.Errorf("list vms: %w", err)
		}
		out = append(out, vv)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("list vms: %w", err)
	}
	return out, nil
}

type viewEvent struct {
	T int64  `json:"t"`
	S string `json:"s"`
	M string `json:"m"`
}

type viewSnapshot struct {
	N string `json:"n"`
	G int    `json:"g"`
	Y int    `json:"y"`
	C string `json:"c"`
	P int    `json:"p"`
	T int64  `json:"t"`
}

// decodeEvents reads a view's events column (NULL or [] when there are none).
func decodeEvents(vmID string, b []byte) ([]Event, error) {
	if len(b) == 0 || string(b) == "[]" {
		return nil, nil
	}
	var in []viewEvent
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]Event, len(in))
	for i, e := range in {
		out[i] = Event{VMID: vmID, Time: time.UnixMicro(e.T).UTC(), State: api.State(e.S), Message: e.M}
	}
	return out, nil
}

// decodeSnapshots reads a view's snapshots column (NULL or [] when there are none).
func decodeSnapshots(vmID string, b []byte) ([]Snapshot, error) {
	if len(b) == 0 || string(b) == "[]" {
		return nil, nil
	}
	var in []viewSnapshot
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("snapshots: %w", err)
	}
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]Snapshot, len(in))
	for i, sn := range in {
		out[i] = Snapshot{VMID: vmID, Name: sn.N, SizeGB: sn.G, Memory: sn.Y != 0, Consistency: sn.C,
			Pending: sn.P != 0, CreatedAt: time.UnixMicro(sn.T).UTC()}
	}
	return out, nil
}
