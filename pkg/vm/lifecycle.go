package vm

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
)

// A VM's lifetime (issue 12): pause and resume, expiry (TTL) and idle stop.
// The service records what the owner asked; the reconciler of the VM's node
// acts on it under the VM's lock, so an expired VM is deleted once per
// cluster, and a node that was down catches up on its first sweep.

// TTLPolicy is the node's rules for VM lifetimes (vmd serve --min-ttl,
// --default-ttl, --max-ttl); a user's own limits (vmd user set-quota
// --max-ttl, --default-ttl) take precedence over Default and Max.
type TTLPolicy struct {
	// Min is the shortest TTL or idle stop accepted (default 1 min; lower
	// only for tests and CI).
	Min time.Duration
	// Default is the TTL of a VM created without one (0: never expires).
	Default time.Duration
	// Max is the longest TTL accepted (0: no maximum).
	Max time.Duration
}

// DefaultMinTTL is TTLPolicy.Min when unset.
const DefaultMinTTL = time.Minute

// touchEvery bounds how often Touch writes a VM's activity to the store:
// idle stop is at least a minute (unless tests lower it), so being up to
// this much behind never stops a VM in use.
const touchEvery = 10 * time.Second

// toucher remembers when each VM's activity was last written.
type toucher struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// limits are the TTL rules for one owner: the node's, overridden by the
// user's own.
func (s *Service) limits(ctx context.Context, ownerID string) (TTLPolicy, error) {
	p := s.ttl
	l, err := s.store.TTLLimits(ctx, ownerID)
	if err != nil {
		return p, fmt.Errorf("ttl limits of %s: %w", ownerID, err)
	}
	if l.Max > 0 {
		p.Max = l.Max
	}
	if l.Default > 0 {
		p.Default = l.Default
	}
	if p.Max > 0 && (p.Default == 0 || p.Default > p.Max) {
		// Under a maximum, no VM may live forever by leaving its TTL out.
		p.Default = p.Max
	}
	return p, nil
}

// ParseLifetime checks a TTL or idle-stop value of a request ("30m") against
// the policy; field names it in the error. Idle stop has no maximum.
func ParseLifetime(field, s string, p TTLPolicy, withMax bool) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, &ValidationError{field, fmt.Sprintf("%q is not a duration (use 90s, 30m, 2h)", s)}
	}
	min := p.Min
	if min <= 0 {
		min = DefaultMinTTL
	}
	if d < min {
		return 0, &ValidationError{field, fmt.Sprintf("must be at least %s", min)}
	}
	if withMax && p.Max > 0 && d > p.Max {
		return 0, &ValidationError{field, fmt.Sprintf("must be at most %s", p.Max)}
	}
	return d, nil
}

// lifetimes fills a new VM's expiry and idle stop from its request.
func (s *Service) lifetimes(ctx context.Context, ownerID string, r api.CreateVMRequest, v *store.VM) error {
	p, err := s.limits(ctx, ownerID)
	if err != nil {
		return err
	}
	ttl := p.Default
	if r.TTL != "" {
		if ttl, err = ParseLifetime("ttl", r.TTL, p, true); err != nil {
			return err
		}
	}
	if ttl > 0 {
		at := v.CreatedAt.Add(ttl)
		v.ExpiresAt = &at
	}
	if r.IdleStop != "" {
		if v.IdleStop, err = ParseLifetime("idle_stop", r.IdleStop, p, false); err != nil {
			return err
		}
	}
	return nil
}

// Extend makes a VM expire ttl from now, whatever its expiry was (none,
// sooner or later): what a CI job that needs "ttl more" expects.
func (s *Service) Extend(ctx context.Context, caller store.User, ref, ttl string) (api.VM, error) {
	v, err := s.lookup(ctx, caller, ref)
	if err != nil {
		return api.VM{}, err
	}
	if ttl == "" {
		return api.VM{}, &ValidationError{"ttl", "is required"}
	}
	p, err := s.limits(ctx, v.OwnerID)
	if err != nil {
		return api.VM{}, err
	}
	d, err := ParseLifetime("ttl", ttl, p, true)
	if err != nil {
		return api.VM{}, err
	}
	if v.Desired == api.DesiredDeleted {
		return api.VM{}, conflictf("vm %s is being deleted", v.Name)
	}
	at := s.now().UTC().Add(d)
	if v, err = s.store.SetExpiry(ctx, v.ID, &at); err != nil {
		return api.VM{}, fmt.Errorf("extend %s: %w", v.ID, err)
	}
	s.Touch(ctx, v.ID)
	s.kickVM(v.ID)
	return s.shown(ctx, v), nil
}

// Touch records activity on a VM: the one place that keeps an idle-stop VM
// running. The console calls it while a session is open, the API on every
// action (start, stop, pause, resume, extend, console token); exec and
// port-forward call it too. Reads (list, get, events) are not activity.
// Writes to the store are at most one per VM every touchEvery; a failure
// is only logged by the caller's next touch succeeding.
func (s *Service) Touch(ctx context.Context, id string) {
	now := s.now().UTC()
	s.touched.mu.Lock()
	if last, ok := s.touched.last[id]; ok && now.Sub(last) < touchEvery && !now.Before(last) {
		s.touched.mu.Unlock()
		return
	}
	if s.touched.last == nil {
		s.touched.last = map[string]time.Time{}
	}
	if len(s.touched.last) > 10000 {
		s.touched.last = map[string]time.Time{} // bounded: forgetting costs one write each
	}
	s.touched.last[id] = now
	s.touched.mu.Unlock()
	if err := s.store.TouchVM(ctx, id, now); err != nil {
		s.touched.mu.Lock()
		delete(s.touched.last, id) // try again on the next touch
		s.touched.mu.Unlock()
	}
}

// Pause freezes a running VM (QMP stop); its process, memory and screen stay.
func (s *Service) Pause(ctx context.Context, caller store.User, ref string) (api.VM, error) {
	return s.transition(ctx, caller, ref, api.DesiredPaused)
}

// Resume thaws a paused VM (QMP cont).
func (s *Service) Resume(ctx context.Context, caller store.User, ref string) (api.VM, error) {
	return s.transition(ctx, caller, ref, api.DesiredRunning)
}

func (s *Service) transition(ctx context.Context, caller store.User, ref string, to api.DesiredState) (api.VM, error) {
	v, err := s.lookup(ctx, caller, ref)
	if err != nil {
		return api.VM{}, err
	}
	change, err := pauseRule(v, to)
	if err != nil {
		return api.VM{}, err
	}
	s.Touch(ctx, v.ID)
	if !change {
		return s.shown(ctx, v), nil
	}
	return s.setDesired(ctx, caller, v.ID, to)
}

// pauseRule says whether a pause (to paused) or resume (to running) of v
// makes sense: change is false when v is already there; a VM that is not
// running (or not paused, for a resume) gets a conflict.
func pauseRule(v store.VM, to api.DesiredState) (change bool, err error) {
	if v.Desired == api.DesiredDeleted {
		return false, conflictf("vm %s is being deleted", v.Name)
	}
	switch to {
	case api.DesiredPaused:
		if v.Desired == api.DesiredPaused {
			return false, nil
		}
		if v.Desired == api.DesiredRunning && v.State == api.StateRunning {
			return true, nil
		}
		return false, conflictf("vm %s is %s: only a running VM can be paused", v.Name, v.State)
	case api.DesiredRunning:
		if v.Desired == api.DesiredPaused {
			return true, nil
		}
		if v.Desired == api.DesiredRunning && v.State == api.StateRunning {
			return false, nil
		}
		return false, conflictf("vm %s is %s, not paused", v.Name, v.State)
	}
	return false, conflictf("vm %s: no transition to %s", v.Name, to)
}

// Due is what a VM's lifetime asks of the reconciler now.
type Due struct {
	Delete bool   // it expired
	Stop   bool   // it was idle too long
	Reason string // the event's message
}

// LifetimeDue decides, at now, whether v expired (delete it) or sat idle
// past its idle stop (stop it). A VM being deleted is past both; a VM not
// running (stopped, paused, in error) is never idle-stopped: a paused VM
// is the owner's explicit wish to keep it.
func LifetimeDue(v store.VM, now time.Time) Due {
	if v.Desired == api.DesiredDeleted {
		return Due{}
	}
	if v.ExpiresAt != nil && !now.Before(*v.ExpiresAt) {
		return Due{Delete: true, Reason: "expired at " + v.ExpiresAt.UTC().Format(time.RFC3339) + " (ttl); deleting"}
	}
	if v.IdleStop > 0 && v.Desired == api.DesiredRunning && v.State == api.StateRunning {
		since := v.CreatedAt
		if v.LastActiveAt != nil && v.LastActiveAt.After(since) {
			since = *v.LastActiveAt
		}
		if now.Sub(since) >= v.IdleStop {
			return Due{Stop: true, Reason: fmt.Sprintf("idle for %s (no console, exec, port-forward or API action since %s); stopping",
				v.IdleStop, since.UTC().Format(time.RFC3339))}
		}
	}
	return Due{}
}

// Pauser is a driver that can freeze and thaw a guest (qemu.Driver).
type Pauser interface {
	// Pause stops the guest's CPUs (QMP stop); its process stays.
	Pause(ctx context.Context, id string) error
	// Resume starts them again (QMP cont).
	Resume(ctx context.Context, id string) error
}

// applyLifetime acts on what LifetimeDue says; it reports whether the VM
// is gone (deleted) or its pass is otherwise done.
func (r *Reconciler) applyLifetime(ctx context.Context, v *store.VM) (acted bool) {
	due := LifetimeDue(*v, r.now())
	switch {
	case due.Delete:
		// Conditional in the store: an extend that committed since v was read wins.
		nv, expired, err := r.cfg.Store.ExpireVM(ctx, v.ID, r.now())
		if err != nil {
			r.log.Error("reconcile: expire", "vm", v.ID, "err", err)
			return false
		}
		*v = nv
		if !expired {
			return false
		}
		r.log.Info("reconcile: vm expired", "vm", v.ID, "expires_at", v.ExpiresAt)
		r.setState(ctx, v, api.StateDeleting, due.Reason)
		return true
	case due.Stop:
		nv, err := r.cfg.Store.SetDesired(ctx, v.ID, api.DesiredStopped)
		if err != nil {
			r.log.Error("reconcile: idle stop", "vm", v.ID, "err", err)
			return false
		}
		*v = nv
		r.log.Info("reconcile: vm idle, stopping", "vm", v.ID, "idle_stop", v.IdleStop)
		r.setState(ctx, v, api.StateStopping, due.Reason)
		return true
	}
	return false
}

// pauseVM makes a VM's guest frozen: it freezes a running one and records
// paused once its monitor says so (also for a guest adopted paused).
func (r *Reconciler) pauseVM(ctx context.Context, v store.VM) {
	d := r.cfg.Driver
	if !d.Alive(v.ID) {
		// The process went while paused (killed, host trouble): nothing to
		// thaw. The owner resumes (a fresh boot) or stops it.
		if v.State != api.StateError {
			r.setState(ctx, &v, api.StateError, "guest process is gone while paused")
		}
		return
	}
	st, err := d.Status(ctx, v.ID)
	if err != nil {
		r.log.Warn("reconcile: status", "vm", v.ID, "err", err)
		return
	}
	if st == "running" {
		p, ok := d.(Pauser)
		if !ok {
			r.setState(ctx, &v, api.StateError, "this node's driver cannot pause guests")
			return
		}
		if err := p.Pause(ctx, v.ID); err != nil {
			r.setState(ctx, &v, api.StateError, "pause failed: "+err.Error())
			return
		}
		st = "paused"
	}
	if st == "paused" && v.State != api.StatePaused {
		r.setState(ctx, &v, api.StatePaused, "paused")
	}
}

// thaw resumes a guest this reconciler paused (state paused), before a run
// or a stop: a frozen guest cannot answer the ACPI power button.
func (r *Reconciler) thaw(ctx context.Context, v *store.VM) {
	if v.State != api.StatePaused || !r.cfg.Driver.Alive(v.ID) {
		return
	}
	p, ok := r.cfg.Driver.(Pauser)
	if !ok {
		return
	}
	if err := p.Resume(ctx, v.ID); err != nil {
		r.log.Warn("reconcile: resume", "vm", v.ID, "err", err)
		return
	}
	if v.Desired == api.DesiredRunning {
		r.setState(ctx, v, api.StateRunning, "resumed")
	}
}

func (r *Reconciler) now() time.Time {
	if r.cfg.Now != nil {
		return r.cfg.Now()
	}
	return time.Now()
}

// CheckTTLLimits checks a user's TTL limits as an operator sets them.
func CheckTTLLimits(l store.TTLLimits) error {
	switch {
	case l.Max < 0 || l.Default < 0:
		return fmt.Errorf("ttl limits must not be negative")
	case l.Max%time.Second != 0 || l.Default%time.Second != 0:
		return fmt.Errorf("ttl limits are whole seconds")
	case l.Max > 0 && l.Default > l.Max:
		return fmt.Errorf("--default-ttl %s is above --max-ttl %s", l.Default, l.Max)
	}
	return nil
}
