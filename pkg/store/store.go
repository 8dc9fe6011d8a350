// Package store keeps vmd's metadata: users, sessions, one-time tokens, VMs
// and their events. One interface, two backends: embedded SQLite (the
// default) and PostgreSQL. Migrations are embedded and applied by Open.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
)

// Sentinel errors; callers test them with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrConflict      = errors.New("conflict")
	ErrQuotaExceeded = errors.New("quota exceeded")
	// ErrUnavailable: the database cannot be reached or is shutting down
	// (a connection lost, PostgreSQL restarted); the same call may succeed
	// shortly. The driver's error stays in the chain for the log.
	ErrUnavailable = errors.New("database unavailable")
)

// QuotaError says which limit a create would pass. Its text names the
// limit and is safe to show the owner: "memory: 10000000 MB asked, 8064 MB
// left of 8192".
type QuotaError struct {
	Resource string // "vms", "cpu", "memory" or "disk"
	Unit     string // "", "MB" or "GB"
	Asked    int
	Left     int // never below 0, even when usage is above a lowered limit
	Limit    int
}

func (e *QuotaError) Error() string {
	u := ""
	if e.Unit != "" {
		u = " " + e.Unit
	}
	return fmt.Sprintf("%s: %d%s asked, %d%s left of %d", e.Resource, e.Asked, u, e.Left, u, e.Limit)
}

// Unwrap lets errors.Is(err, ErrQuotaExceeded) find every QuotaError.
func (e *QuotaError) Unwrap() error { return ErrQuotaExceeded }

// Placer chooses a new VM's node inside CreateVMPlaced's transaction, given
// every registered node and what the VMs recorded on each hold (NodeUsage).
// Its error aborts the create.
type Placer func(nodes []Node, usage map[string]api.Quota) (node string, err error)

// UsageFix is one owner's usage counters that did not match their VMs.
type UsageFix struct {
	UserID   string
	Was, Now api.Quota
}

// User is a stored account.
type User struct {
	ID           string
	Email        string // stored lower-case
	PasswordHash string
	Admin        bool
	Verified     bool
	Disabled     bool // by an admin: no login, no session
	Quota        api.Quota
	Usage        api.Quota // kept by CreateVM and DeleteVM in the same transaction
	CreatedAt    time.Time
}

// ToAPI returns the user as GET /me shows it.
func (u User) ToAPI() api.User {
	return api.User{ID: u.ID, Email: u.Email, Admin: u.Admin, Verified: u.Verified,
		Disabled: u.Disabled, Quota: u.Quota, Usage: u.Usage, CreatedAt: u.CreatedAt}
}

// Session is a login: a browser cookie or a CLI bearer token refers to one by ID.
type Session struct {
	ID        string
	UserID    string
	Kind      string // "browser" or "cli"
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt *time.Time
}

// Token is a one-time token (e-mail verification); only its SHA-256 is stored.
type Token struct {
	Hash      string
	Kind      string // "verify" or "reset"
	UserID    string
	ExpiresAt time.Time
}

// VM is a stored VM: desired state from the owner, actual state from the reconciler.
type VM struct {
	ID        string
	OwnerID   string
	Name      string
	Template  string
	CPU       int
	MemoryMB  int
	DiskGB    int
	UserData  string
	State     api.State
	Desired   api.DesiredState
	Node      string
	Message   string
	CreatedAt time.Time
	UpdatedAt time.Time
	Network   string // api.NetworkNAT or api.NetworkNone
}

// ToAPI returns the VM as the API shows it (events are added by the caller).
func (v VM) ToAPI() api.VM {
	return api.VM{ID: v.ID, Name: v.Name, OwnerID: v.OwnerID, Template: v.Template, CPU: v.CPU,
		MemoryMB: v.MemoryMB, DiskGB: v.DiskGB, State: v.State, DesiredState: v.Desired,
		Node: v.Node, Message: v.Message, CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt,
		Network: v.Network, Addresses: []string{}}
}

// Event is one recorded state change of a VM.
type Event struct {
	VMID    string
	Time    time.Time
	State   api.State
	Message string
}

// Change is one entry of the per-owner change feed: the VM as it was after
// CreateVM, SetState, SetDesired or DeleteVM (State api.StateDeleted).
// Entries outlive their VM.
type Change struct {
	ID      int64 // grows with every change, in commit order
	OwnerID string
	VMID    string
	VMName  string
	State   api.State
	Desired api.DesiredState
	Message string
	Time    time.Time
}

// ToAPI returns the change as GET /events sends it.
func (c Change) ToAPI() api.Change {
	return api.Change{ID: c.ID, VMID: c.VMID, VMName: c.VMName, State: c.State, DesiredState: c.Desired,
		Message: c.Message, Time: c.Time}
}

// MaxChangesPerList bounds one ListChanges call.
const MaxChangesPerList = 1000

// Store is implemented by the SQLite and PostgreSQL backends alike.
type Store interface {
	// CreateUser inserts u; ErrConflict when the e-mail is taken.
	CreateUser(ctx context.Context, u User) error
	GetUser(ctx context.Context, id string) (User, error)
	GetUserByEmail(ctx context.Context, email string) (User, error)
	ListUsers(ctx context.Context) ([]User, error)
	SetVerified(ctx context.Context, userID string) error
	SetPasswordHash(ctx context.Context, userID, hash string) error
	// SetDisabled marks a user disabled or enabled again.
	SetDisabled(ctx context.Context, userID string, disabled bool) error
	// SetQuota replaces a user's limits; usage is left as it is, even above them.
	SetQuota(ctx context.Context, userID string, q api.Quota) error
	// DeleteUser removes an account with its sessions, tokens and change
	// feed; ErrConflict while the user still owns VMs (delete those first).
	DeleteUser(ctx context.Context, userID string) error

	CreateToken(ctx context.Context, t Token) error
	// ConsumeToken deletes and returns the unexpired token of that kind and hash;
	// ErrNotFound when it is missing, used or expired.
	ConsumeToken(ctx context.Context, kind, hash string, now time.Time) (Token, error)
	// DeleteUserTokens removes every token of that kind of one user (the
	// other reset links once a password was reset).
	DeleteUserTokens(ctx context.Context, userID, kind string) error

	CreateSession(ctx context.Context, s Session) error
	GetSession(ctx context.Context, id string) (Session, error)
	RevokeSession(ctx context.Context, id string, now time.Time) error
	// RevokeUserSessions revokes all of a user's open sessions but exceptID
	// and returns the ids it revoked.
	RevokeUserSessions(ctx context.Context, userID, exceptID string, now time.Time) ([]string, error)

	// CreateVM admits v against its owner's quota and inserts it in one
	// transaction: ErrQuotaExceeded when it does not fit, ErrConflict when
	// the owner already has a VM of that name. It also records the first event.
	// CreateVM, SetDesired, SetState and DeleteVM each append to the change
	// feed in the same transaction as their write.
	CreateVM(ctx context.Context, v VM) error
	// CreateVMPlaced is CreateVM that also places v: after quota admission,
	// under a lock that serialises every placement of the cluster, place
	// picks v's node from the nodes and their usage as this transaction
	// sees them, so two creates can never both take a node's last room.
	// It returns v as inserted, its node set.
	CreateVMPlaced(ctx context.Context, v VM, place Placer) (VM, error)
	GetVM(ctx context.Context, id string) (VM, error)
	GetVMByName(ctx context.Context, ownerID, name string) (VM, error)
	// ListVMs lists one owner's VMs, or every VM when ownerID is "", by creation time.
	ListVMs(ctx context.Context, ownerID string) ([]VM, error)
	// SetDesired records what the owner wants.
	SetDesired(ctx context.Context, id string, d api.DesiredState) (VM, error)
	// SetState records the actual state, a message and the node, and appends an event.
	SetState(ctx context.Context, id string, s api.State, message string) (VM, error)
	SetNode(ctx context.Context, id, node string) error
	// DeleteVM removes the record and its events and gives its resources back
	// to the owner's usage, in one transaction. The change feed keeps a
	// last entry in state api.StateDeleted.
	DeleteVM(ctx context.Context, id string) error
	ListEvents(ctx context.Context, vmID string) ([]Event, error)
	// RecountUsage sets every owner's usage counters to what their VMs
	// hold and returns the counters it had to fix.
	RecountUsage(ctx context.Context) ([]UsageFix, error)

	// ListChanges returns up to limit changes with IDs above afterID, oldest
	// first, of one owner's VMs or of every VM when ownerID is "". A limit
	// outside 1..MaxChangesPerList means MaxChangesPerList. A reader that
	// saw ID n never later finds a new change with an ID at or below n.
	ListChanges(ctx context.Context, ownerID string, afterID int64, limit int) ([]Change, error)
	// LastChangeID is the ID of the owner's newest change (every owner's
	// when ownerID is ""), or 0 when there is none.
	LastChangeID(ctx context.Context, ownerID string) (int64, error)
	// PruneChanges deletes the changes recorded before t, but never the
	// newest one, so IDs keep growing and LastChangeID never goes back.
	PruneChanges(ctx context.Context, before time.Time) (int64, error)

	NodeStore

	// Ping checks the connection, for /readyz.
	Ping(ctx context.Context) error
	Close() error
}
