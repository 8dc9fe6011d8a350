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

// APICode makes it an api.CodedError.
func (e *QuotaError) APICode() string { return api.CodeQuotaExceeded }

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
	// ExpiresAt, if set, is when vmd deletes the VM (its TTL ran out).
	ExpiresAt *time.Time
	// IdleStop, if above 0, stops the VM after that long without activity.
	IdleStop time.Duration
	// LastActiveAt is the last console, exec, port-forward or API action
	// on the VM (nil: none since it was created). It is whole seconds
	// behind at most; TouchVM never moves it back.
	LastActiveAt *time.Time
	// Ready and Addresses are what the guest agent (or the serial ready
	// line) said of the running guest; false and empty once it leaves running.
	Ready     bool
	Addresses []string
	// SSHKeys are the authorized keys the guest is given, fixed at create
	// time (the owner's keys then, plus the request's): "TYPE BASE64".
	SSHKeys []string
	// HostKeys are the SSH host keys the guest last reported ("TYPE BASE64").
	HostKeys []string
	Network  string // api.NetworkNAT or api.NetworkNone
}

// ToAPI returns the VM as the API shows it (events are added by the caller).
func (v VM) ToAPI() api.VM {
	addrs := v.Addresses
	if addrs == nil {
		addrs = []string{}
	}
	out := api.VM{ID: v.ID, Name: v.Name, OwnerID: v.OwnerID, Template: v.Template, CPU: v.CPU,
		MemoryMB: v.MemoryMB, DiskGB: v.DiskGB, State: v.State, DesiredState: v.Desired,
		Node: v.Node, Message: v.Message, CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt,
		Ready: v.Ready, Addresses: addrs, SSHHostKeys: append([]string{}, v.HostKeys...),
		Network: v.Network}
	if v.ExpiresAt != nil {
		t := v.ExpiresAt.UTC()
		out.ExpiresAt = &t
	}
	if v.IdleStop > 0 {
		out.IdleStop = v.IdleStop.String()
	}
	return out
}

// TTLLimits are an operator's limits on one user's VM lifetimes; zero
// values take the node's defaults (vmd serve --default-ttl, --max-ttl).
type TTLLimits struct {
	Max     time.Duration
	Default time.Duration
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
	Ready   bool
}

// ToAPI returns the change as GET /events sends it.
func (c Change) ToAPI() api.Change {
	return api.Change{ID: c.ID, VMID: c.VMID, VMName: c.VMName, State: c.State, DesiredState: c.Desired,
		Message: c.Message, Time: c.Time, Ready: c.Ready}
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
	// SetGuest records whether the running guest is ready and its
	// addresses. With a message it also appends an event and a change
	// (readiness turning); without, it only updates (addresses refreshed).
	SetGuest(ctx context.Context, id string, ready bool, addresses []string, message string) (VM, error)
	// DeleteVM removes the record, its events and its snapshots' records and
	// gives their resources back to the owner's usage, in one transaction. The change feed keeps a
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

	// SetExpiry sets (nil: clears) when a VM expires.
	SetExpiry(ctx context.Context, id string, at *time.Time) (VM, error)
	// ExpireVM sets desired deleted only if the VM's expiry is at or before
	// now, in one statement, so an extend that committed first wins;
	// expired is false (and v the VM as it is) otherwise.
	ExpireVM(ctx context.Context, id string, now time.Time) (v VM, expired bool, err error)
	// TouchVM records activity on a VM at at; an older time than the
	// recorded one changes nothing. It leaves updated_at alone.
	TouchVM(ctx context.Context, id string, at time.Time) error
	// TTLLimits returns a user's lifetime limits (zero: the node's defaults).
	TTLLimits(ctx context.Context, userID string) (TTLLimits, error)
	// SetTTLLimits replaces them.
	SetTTLLimits(ctx context.Context, userID string, l TTLLimits) error

	NodeStore
	SnapshotStore
	ViewStore

	// Ping checks the connection, for /readyz.
	Ping(ctx context.Context) error
	Close() error

	// AddSSHKey adds one of a user's SSH keys: ErrSSHKeyNameTaken or
	// ErrSSHKeyDuplicate (both ErrConflict) when the name or the
	// fingerprint is the user's already, ErrTooManySSHKeys at limit keys.
	AddSSHKey(ctx context.Context, k SSHKey, limit int) error
	// ListSSHKeys lists a user's keys, oldest first.
	ListSSHKeys(ctx context.Context, userID string) ([]SSHKey, error)
	// DeleteSSHKey removes a user's key by name; ErrNotFound when none.
	DeleteSSHKey(ctx context.Context, userID, name string) error
	// SetHostKeys records the SSH host keys a VM's guest reported.
	SetHostKeys(ctx context.Context, vmID string, keys []string) error

	ShareLinkStore
}

// ShareLinkStore keeps view-only console share links (pkg/console).
type ShareLinkStore interface {
	// CreateShareLink inserts a link: ErrNotFound when its VM or maker is
	// gone, ErrConflict when its id or hash is taken.
	CreateShareLink(ctx context.Context, l ShareLink) error
	// GetShareLink finds the link whose secret hashes to hash, unexpired at
	// now; ErrNotFound when there is none.
	GetShareLink(ctx context.Context, hash string, now time.Time) (ShareLink, error)
	// ListShareLinks lists a VM's links unexpired at now (every one for a
	// zero now), oldest first.
	ListShareLinks(ctx context.Context, vmID string, now time.Time) ([]ShareLink, error)
	// DeleteShareLink revokes one of a VM's links; ErrNotFound when none.
	DeleteShareLink(ctx context.Context, vmID, id string) error
}
