// Package vm holds the VM service (what the API asks of VMs: validation,
// quota-checked creation, desired-state changes), the reconciler that makes
// actual state follow desired state, and (in vm/qemu) the QEMU driver.
// Nothing here knows about HTTP.
package vm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/dnslabel"
	"github.com/vmdhq/vmd/pkg/store"
)

// Templates answers which base images exist on this node (pkg/image.Catalog).
type Templates interface {
	List(ctx context.Context) ([]api.Template, error)
	Get(ctx context.Context, name string) (api.Template, error)
	// Verify re-checks a template's checksum and returns the base file's path.
	Verify(ctx context.Context, name string) (string, error)
}

// Provisioner makes and removes a VM's files and processes on this node
// (the QEMU driver). Provision runs inside the create call so a failure
// is returned to the caller and rolled back, never left half-made.
type Provisioner interface {
	// Provision creates the VM's directory, overlay on basePath and seed.
	Provision(ctx context.Context, v store.VM, basePath string) error
	// Destroy stops any process of the VM and removes every file it had.
	Destroy(ctx context.Context, v store.VM) error
}

// Kicker is told that a VM's desired state changed (the reconciler).
type Kicker interface {
	Kick(id string)
}

// Placement chooses the node of a new VM (cluster.Registry). Without one,
// every VM is created on this node and no capacity is checked.
type Placement interface {
	// Choose picks, among nodes with the usage recorded on each, one with
	// room for demand; only, if set, is the one node it may pick (another
	// node's placement). It returns a *CapacityError when none fits.
	Choose(nodes []store.Node, usage map[string]api.Quota, demand api.Quota, only string) (string, error)
}

// NodeHealth says whether a node still vouches for its VMs (cluster.Registry).
type NodeHealth interface {
	// NodeDown reports a node that stopped heartbeating, and its last heartbeat.
	NodeDown(ctx context.Context, node string) (down bool, since time.Time, err error)
}

// Errors the API maps to its codes.
var (
	ErrInvalid       = errors.New("invalid")
	ErrNotFound      = store.ErrNotFound
	ErrConflict      = store.ErrConflict
	ErrQuotaExceeded = store.ErrQuotaExceeded
)

// ErrNoSpace means the node's disk cannot hold the VM's files.
var ErrNoSpace = errors.New("not enough free space on the node")

// ErrNoCapacity: no node that takes new VMs has room for this one.
var ErrNoCapacity = errors.New("no node has room")

// CapacityError says what did not fit; its text is safe to show.
type CapacityError struct {
	Demand api.Quota
	Nodes  int // alive nodes that take new VMs
}

func (e *CapacityError) Error() string {
	return fmt.Sprintf("no node has room for %d vCPU, %d MB memory and %d GB disk (%d nodes take new VMs)",
		e.Demand.CPUs, e.Demand.MemoryMB, e.Demand.DiskGB, e.Nodes)
}

// Unwrap lets errors.Is(err, ErrNoCapacity) find every CapacityError.
func (e *CapacityError) Unwrap() error { return ErrNoCapacity }

// APICode makes it an api.CodedError.
func (e *CapacityError) APICode() string { return api.CodeNoCapacity }

// ElsewhereError is Create's answer when placement picked another node:
// the VM is to be created there (the server forwards the request with a
// signed placement, and that node calls CreateHere). Nothing was recorded.
type ElsewhereError struct{ Node string }

func (e *ElsewhereError) Error() string { return "the vm is placed on node " + e.Node }

// QuotaError names the limit a create would pass ("memory: 10000000 MB
// asked, 8064 MB left of 8192"); it unwraps to ErrQuotaExceeded.
type QuotaError = store.QuotaError

// NameTakenError: the owner has a VM of that name already. Its text is
// safe to show.
type NameTakenError struct{ Name string }

func (e *NameTakenError) Error() string { return "a VM named " + e.Name + " already exists" }

// Unwrap lets errors.Is(err, ErrConflict) find it.
func (e *NameTakenError) Unwrap() error { return ErrConflict }

// APICode makes it an api.CodedError.
func (e *NameTakenError) APICode() string { return api.CodeConflict }

// ValidationError says which field of a request is wrong.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Message }

// Unwrap lets errors.Is(err, ErrInvalid) find every validation error.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// APICode makes it an api.CodedError.
func (e *ValidationError) APICode() string { return api.CodeValidation }

// APIField names the field in the error body.
func (e *ValidationError) APIField() string { return e.Field }

// Service is the VM use-cases behind the API.
type Service struct {
	store     store.Store
	templates Templates
	prov      Provisioner // nil: records only
	place     Placement   // nil: every VM is created here, unchecked
	kick      Kicker      // nil: nothing reconciles
	addrs     Addresser   // nil: addresses stay []
	health    NodeHealth  // nil: every node is taken as alive
	node      string
	now       func() time.Time
	ttl       TTLPolicy
	touched   toucher
	guest     GuestConfig // exec and files through the guest agent
	ops       guestOps
	screens   Screenshotter // nil: no screenshots
}

// ServiceConfig wires a Service.
type ServiceConfig struct {
	Store       store.Store
	Templates   Templates
	Provisioner Provisioner
	Kicker      Kicker
	Node        string
	// Health, if set, makes VMs of a node that stopped heartbeating read as unknown.
	Health NodeHealth
	// Placement, if set, chooses each new VM's node and checks its capacity.
	Placement Placement
	// TTL is the node's rules for VM lifetimes (zero: no default or maximum, 1 min minimum).
	TTL TTLPolicy
	// Screens, if set, takes screenshots of this node's guests (the driver).
	Screens Screenshotter
}

// NewService returns a Service; Provisioner and Kicker may be nil.
func NewService(c ServiceConfig) *Service {
	return &Service{store: c.Store, templates: c.Templates, prov: c.Provisioner, kick: c.Kicker,
		health: c.Health, place: c.Placement, node: c.Node, now: time.Now, ttl: c.TTL, screens: c.Screens}
}

// SetKicker wires the reconciler after both exist.
func (s *Service) SetKicker(k Kicker) { s.kick = k }

// Addresser knows the addresses of the guests running on this node (the
// driver, from their DHCP leases).
type Addresser interface {
	Addresses(vmID string) []string
}

// SetAddresser makes the VMs this node runs show their guests' addresses.
func (s *Service) SetAddresser(a Addresser) { s.addrs = a }

// normalize fills defaults and checks a create request's shape.
func normalize(r api.CreateVMRequest) (api.CreateVMRequest, error) {
	if r.CPU == 0 {
		r.CPU = api.DefaultCPU
	}
	if r.MemoryMB == 0 {
		r.MemoryMB = api.DefaultMemoryMB
	}
	if r.DiskGB == 0 {
		r.DiskGB = api.DefaultDiskGB
	}
	if r.Network == "" {
		r.Network = api.NetworkNAT
	}
	switch {
	case r.Name == "":
		return r, &ValidationError{"name", "is required"}
	case !dnslabel.Valid(r.Name):
		return r, &ValidationError{"name", dnslabel.Rule}
	case r.Template == "":
		return r, &ValidationError{"template", "is required"}
	case r.CPU < 1 || r.CPU > api.MaxCPU:
		return r, &ValidationError{"cpu", fmt.Sprintf("must be between 1 and %d", api.MaxCPU)}
	case r.MemoryMB < api.MinMemoryMB || r.MemoryMB > api.MaxMemoryMB:
		return r, &ValidationError{"memory_mb", fmt.Sprintf("must be between %d and %d", api.MinMemoryMB, api.MaxMemoryMB)}
	case r.DiskGB < 1 || r.DiskGB > api.MaxDiskGB:
		return r, &ValidationError{"disk_gb", fmt.Sprintf("must be between 1 and %d", api.MaxDiskGB)}
	case len(r.UserData) > 64*1024:
		return r, &ValidationError{"userdata", "must be at most 64 KiB"}
	case r.Network != api.NetworkNAT && r.Network != api.NetworkNone:
		return r, &ValidationError{"network", fmt.Sprintf("must be %s or %s", api.NetworkNAT, api.NetworkNone)}
	}
	return r, nil
}

// NewID returns a fresh VM id: "vm_" and a lower-case ULID.
func NewID() string { return "vm_" + strings.ToLower(ulid.Make().String()) }

// Create admits a new VM: it validates r, admits it against the owner's
// quota, then places it (checking the node's capacity) in that order, the
// last two in one store transaction. When placement picks another node it
// records nothing and returns an *ElsewhereError naming it. On this node,
// with a Provisioner, it then makes the VM's files, undoing everything on
// failure.
func (s *Service) Create(ctx context.Context, ownerID string, r api.CreateVMRequest) (api.VM, error) {
	return s.create(ctx, ownerID, r, "")
}

// CreateHere is Create for a VM another node placed on this one: the same
// admission, with this node's capacity checked again, as placements race.
func (s *Service) CreateHere(ctx context.Context, ownerID string, r api.CreateVMRequest) (api.VM, error) {
	return s.create(ctx, ownerID, r, s.node)
}

func (s *Service) create(ctx context.Context, ownerID string, r api.CreateVMRequest, only string) (api.VM, error) {
	var from *cloneSource
	if r.From != "" {
		var err error
		if from, err = s.cloneFrom(ctx, ownerID, &r); err != nil {
			return api.VM{}, err
		}
		// A clone's disk is copied on its source's node.
		if only == "" {
			only = from.vm.Node
		} else if only != from.vm.Node {
			return api.VM{}, &ValidationError{"from", "the clone must be placed on its source's node"}
		}
	}
	askedMemory := r.MemoryMB
	r, err := normalize(r)
	if err != nil {
		return api.VM{}, err
	}
	t, err := s.templates.Get(ctx, r.Template)
	if err != nil {
		if errors.Is(err, ErrNotFound) || isNotFound(err) {
			return api.VM{}, &ValidationError{"template", fmt.Sprintf("no template named %q", r.Template)}
		}
		return api.VM{}, fmt.Errorf("look up template %s: %w", r.Template, err)
	}
	if r.MemoryMB, err = templateMemory(t, askedMemory, r.MemoryMB); err != nil {
		return api.VM{}, err
	}
	keys, err := s.guestKeys(ctx, ownerID, r.SSHKeys)
	if err != nil {
		return api.VM{}, err
	}
	now := s.now().UTC()
	v := store.VM{ID: NewID(), OwnerID: ownerID, Name: r.Name, Template: r.Template, CPU: r.CPU,
		MemoryMB: r.MemoryMB, DiskGB: r.DiskGB, UserData: r.UserData, State: api.StatePending,
		Desired: api.DesiredRunning, Node: s.node, CreatedAt: now, UpdatedAt: now, SSHKeys: keys, Network: r.Network}
	if err := s.lifetimes(ctx, ownerID, r, &v); err != nil {
		return api.VM{}, err
	}
	if s.prov != nil {
		v.State = api.StateProvisioning
	}
	if v, err = s.store.CreateVMPlaced(ctx, v, s.placer(v, only)); err != nil {
		return api.VM{}, admissionError(r.Name, err)
	}
	if s.prov != nil {
		if v, err = s.provision(ctx, v, from); err != nil {
			return api.VM{}, err
		}
	}
	s.kickVM(v.ID)
	return v.ToAPI(), nil
}

// placer is the store's placement step for v: nil without a Placement.
func (s *Service) placer(v store.VM, only string) store.Placer {
	if s.place == nil {
		return nil
	}
	demand := api.Quota{VMs: 1, CPUs: v.CPU, MemoryMB: v.MemoryMB, DiskGB: v.DiskGB}
	return func(nodes []store.Node, usage map[string]api.Quota) (string, error) {
		node, err := s.place.Choose(nodes, usage, demand, only)
		if err != nil {
			return "", err
		}
		if node != s.node {
			return "", &ElsewhereError{Node: node} // rolls the admission back
		}
		return node, nil
	}
}

// admissionError gives the caller admission's own typed answer, whose
// text is safe to show, rather than the store's wrapping.
func admissionError(name string, err error) error {
	var (
		ee *ElsewhereError
		qe *QuotaError
		ce *CapacityError
	)
	switch {
	case errors.As(err, &ee):
		return ee
	case errors.As(err, &qe):
		return qe
	case errors.As(err, &ce):
		return ce
	case errors.Is(err, ErrConflict):
		// The id is fresh, so the conflict is the owner's VM name.
		return &NameTakenError{Name: name}
	}
	return fmt.Errorf("create vm %s: %w", name, err)
}

// provision makes a recorded VM's files and marks it starting. On failure
// it removes the files and the record: nothing is left half-made, not
// even when the VM was deleted meanwhile.
func (s *Service) provision(ctx context.Context, v store.VM, from *cloneSource) (store.VM, error) {
	base, err := s.templates.Verify(ctx, v.Template)
	makeFiles := func() error { return s.prov.Provision(ctx, v, base) }
	if from != nil {
		// The clone's disk is copied instead of starting empty.
		makeFiles = func() error { return s.snapshotter().ProvisionClone(ctx, v, base, from.vm, from.snap) }
	}
	if err != nil {
		err = fmt.Errorf("template %s: %w", v.Template, err)
	} else if err = makeFiles(); err != nil {
		err = fmt.Errorf("provision %s: %w", v.ID, err)
	} else {
		nv, serr := s.store.SetState(ctx, v.ID, api.StateStarting, "provisioned")
		if serr == nil {
			return nv, nil
		}
		err = fmt.Errorf("create vm %s: %w", v.Name, serr)
	}
	// Roll back with a fresh context: the request's may be what failed.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	derr := s.prov.Destroy(cctx, v)
	if e := s.store.DeleteVM(cctx, v.ID); e != nil && !errors.Is(e, ErrNotFound) {
		derr = errors.Join(derr, e)
	}
	// A worker that saw the VM provisioning waits for a kick to find it gone.
	s.kickVM(v.ID)
	if derr != nil {
		return store.VM{}, fmt.Errorf("%w (rollback: %v)", err, derr)
	}
	if errors.Is(err, ErrNotFound) {
		// The record went (or is going) under the create: a delete won.
		return store.VM{}, conflictf("vm %s was deleted while it was being created", v.Name)
	}
	return store.VM{}, err
}

// isNotFound lets Templates return their own not-found sentinel.
func isNotFound(err error) bool {
	var nf interface{ NotFound() bool }
	return errors.As(err, &nf) && nf.NotFound()
}

func (s *Service) kickVM(id string) {
	if s.kick != nil {
		s.kick.Kick(id)
	}
}

// lookup finds a caller's VM by id or name. Another owner's VM is reported
// as not found, so ids do not leak; admins see every VM.
func (s *Service) lookup(ctx context.Context, caller store.User, ref string) (store.VM, error) {
	var v store.VM
	var err error
	if strings.HasPrefix(ref, "vm_") {
		v, err = s.store.GetVM(ctx, ref)
	} else {
		v, err = s.store.GetVMByName(ctx, caller.ID, ref)
	}
	if err != nil {
		return store.VM{}, err // the store names the VM already
	}
	if err := Authorize(caller, v); err != nil {
		return store.VM{}, fmt.Errorf("vm %s: %w", ref, ErrNotFound)
	}
	return v, nil
}

// Lookup returns the stored VM a caller may act on (the console needs it).
func (s *Service) Lookup(ctx context.Context, caller store.User, ref string) (store.VM, error) {
	return s.lookup(ctx, caller, ref)
}

// Get returns one VM with its events and snapshots, read in one store
// call (one round trip on PostgreSQL); authorized as lookup is.
func (s *Service) Get(ctx context.Context, caller store.User, ref string) (api.VM, error) {
	k := store.VMKey{OwnerID: caller.ID, Name: ref}
	if strings.HasPrefix(ref, "vm_") {
		k = store.VMKey{ID: ref}
	}
	v, err := s.store.GetVMView(ctx, k)
	if err != nil {
		return api.VM{}, err // the store names the VM already
	}
	if err := Authorize(caller, v.VM); err != nil {
		return api.VM{}, fmt.Errorf("vm %s: %w", ref, ErrNotFound)
	}
	out := s.shown(ctx, v.VM)
	if len(v.Events) > 0 {
		out.Events = make([]api.VMEvent, 0, len(v.Events))
	}
	for _, e := range v.Events {
		out.Events = append(out.Events, api.VMEvent{Time: e.Time, State: e.State, Message: e.Message})
	}
	if sh := shownSnapshots(v.Snapshots); len(sh) > 0 {
		out.Snapshots = sh
	}
	return out, nil
}

// List returns the caller's VMs, or every VM when all is set and the caller
// is an admin, each with its snapshots: one store call.
func (s *Service) List(ctx context.Context, caller store.User, all bool) ([]api.VM, error) {
	owner := caller.ID
	if all {
		if err := AuthorizeAll(caller); err != nil {
			return nil, fmt.Errorf("list all vms: %w", err)
		}
		owner = ""
	}
	vms, err := s.store.ListVMViews(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("list vms: %w", err)
	}
	out := make([]api.VM, 0, len(vms))
	for _, v := range vms {
		a := s.shown(ctx, v.VM)
		if sh := shownSnapshots(v.Snapshots); len(sh) > 0 {
			a.Snapshots = sh
		}
		out = append(out, a)
	}
	return out, nil
}

// ErrForbidden is returned when a caller lacks a role (not for other users' VMs, which are not found).
var ErrForbidden = errors.New("forbidden")

// Start asks for the VM to run.
func (s *Service) Start(ctx context.Context, caller store.User, ref string) (api.VM, error) {
	return s.setDesired(ctx, caller, ref, api.DesiredRunning)
}

// Stop asks for the VM to stop; force skips the guest's clean shutdown.
func (s *Service) Stop(ctx context.Context, caller store.User, ref string, force bool) (api.VM, error) {
	v, err := s.setDesired(ctx, caller, ref, api.DesiredStopped)
	if err == nil && force {
		s.forceStop(v.ID)
	}
	return v, err
}

// forceStop tells a reconciler that can skip the ACPI wait to do so.
func (s *Service) forceStop(id string) {
	if f, ok := s.kick.(interface{ ForceStop(id string) }); ok {
		f.ForceStop(id)
	}
}

// Delete asks for the VM to go; the reconciler removes its files and record.
// Without a reconciler the record is removed at once.
func (s *Service) Delete(ctx context.Context, caller store.User, ref string) (api.VM, error) {
	v, err := s.lookup(ctx, caller, ref)
	if err != nil {
		return api.VM{}, err
	}
	if s.kick == nil {
		if s.prov != nil {
			if err := s.prov.Destroy(ctx, v); err != nil {
				return api.VM{}, fmt.Errorf("delete %s: %w", v.ID, err)
			}
		}
		if err := s.store.DeleteVM(ctx, v.ID); err != nil {
			return api.VM{}, fmt.Errorf("delete %s: %w", v.ID, err)
		}
		v.State, v.Desired = api.StateDeleting, api.DesiredDeleted
		return v.ToAPI(), nil
	}
	if _, err := s.store.SetDesired(ctx, v.ID, api.DesiredDeleted); err != nil {
		return api.VM{}, fmt.Errorf("delete %s: %w", v.ID, err)
	}
	v, err = s.store.SetState(ctx, v.ID, api.StateDeleting, "delete requested")
	if err != nil {
		return api.VM{}, fmt.Errorf("delete %s: %w", v.ID, err)
	}
	s.kickVM(v.ID)
	return v.ToAPI(), nil
}

func (s *Service) setDesired(ctx context.Context, caller store.User, ref string, d api.DesiredState) (api.VM, error) {
	v, err := s.lookup(ctx, caller, ref)
	if err != nil {
		return api.VM{}, err
	}
	if v.Desired == api.DesiredDeleted {
		return api.VM{}, conflictf("vm %s is being deleted", v.Name)
	}
	s.Touch(ctx, v.ID) // an owner's action: the VM is in use
	if v, err = s.store.SetDesired(ctx, v.ID, d); err != nil {
		return api.VM{}, fmt.Errorf("set %s %s: %w", v.ID, d, err)
	}
	// A start is the owner's explicit retry of a VM left in error.
	if d == api.DesiredRunning && v.State == api.StateError {
		if v, err = s.store.SetState(ctx, v.ID, api.StateStarting, "start requested"); err != nil {
			return api.VM{}, fmt.Errorf("start %s: %w", v.ID, err)
		}
	}
	s.kickVM(v.ID)
	return v.ToAPI(), nil
}

// Templates lists this node's templates.
func (s *Service) Templates(ctx context.Context) ([]api.Template, error) {
	return s.templates.List(ctx)
}

// shown is a VM as the API shows it: a VM whose node stopped heartbeating
// reads as unknown, as nobody can vouch for its guest; the stored state
// stays for when the node comes back.
func (s *Service) shown(ctx context.Context, v store.VM) api.VM {
	out := v.ToAPI()
	if s.addrs != nil && v.Node == s.node && v.State == api.StateRunning {
		// The lease vmd's network handed out, beside what the guest agent reported.
		for _, a := range s.addrs.Addresses(v.ID) {
			if !slices.Contains(out.Addresses, a) {
				out.Addresses = append(out.Addresses, a)
			}
		}
	}
	if s.health == nil {
		return out
	}
	down, since, err := s.health.NodeDown(ctx, v.Node)
	if err != nil || !down {
		return out // a failed look-up shows the last known state
	}
	out.State = api.StateUnknown
	if since.IsZero() {
		out.Message = fmt.Sprintf("node %s is not registered", v.Node)
	} else {
		out.Message = fmt.Sprintf("node %s not heartbeating since %s", v.Node, since.UTC().Format(time.RFC3339))
	}
	return out
}
