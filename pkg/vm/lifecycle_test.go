package vm_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm"
)

// fakeClock is a test's clock: it moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

// newClock starts at a whole second not before the real time: a reconciler
// takes a record written before it started for one an earlier vmd left.
func newClock() *fakeClock {
	return &fakeClock{t: time.Now().UTC().Add(time.Second).Truncate(time.Second)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestParseLifetime(t *testing.T) {
	p := vm.TTLPolicy{Max: 2 * time.Hour}
	tests := []struct {
		in      string
		withMax bool
		policy  vm.TTLPolicy
		want    time.Duration
		err     string // "" for none
	}{
		{"30m", true, p, 30 * time.Minute, ""},
		{"1m", true, p, time.Minute, ""},
		{"2h", true, p, 2 * time.Hour, ""},
		{"59s", true, p, 0, "ttl: must be at least 1m0s"},
		{"2h1s", true, p, 0, "ttl: must be at most 2h0m0s"},
		{"5h", false, p, 5 * time.Hour, ""}, // idle stop: no maximum
		{"-5m", true, p, 0, "at least"},
		{"soon", true, p, 0, `"soon" is not a duration`},
		{"30", true, p, 0, "not a duration"},
		{"5s", true, vm.TTLPolicy{Min: 2 * time.Second}, 5 * time.Second, ""}, // a test's lower minimum
		{"1s", true, vm.TTLPolicy{Min: 2 * time.Second}, 0, "at least 2s"},
		{"100h", true, vm.TTLPolicy{}, 100 * time.Hour, ""}, // no maximum set
	}
	for _, tc := range tests {
		got, err := vm.ParseLifetime("ttl", tc.in, tc.policy, tc.withMax)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, vm.ErrInvalid)):
			t.Errorf("%q: error %v, want one with %q", tc.in, err, tc.err)
		case got != tc.want:
			t.Errorf("%q: %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestLifetimeDue(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	base := store.VM{ID: "vm_x", State: api.StateRunning, Desired: api.DesiredRunning, CreatedAt: now.Add(-time.Hour)}
	with := func(f func(v *store.VM)) store.VM { v := base; f(&v); return v }
	tests := []struct {
		name   string
		v      store.VM
		delete bool
		stop   bool
		reason string
	}{
		{"no lifetimes", base, false, false, ""},
		{"expires later", with(func(v *store.VM) { v.ExpiresAt = at(time.Second) }), false, false, ""},
		{"expires now", with(func(v *store.VM) { v.ExpiresAt = at(0) }), true, false, "expired at 2030-01-01T12:00:00Z"},
		{"expired while down", with(func(v *store.VM) { v.ExpiresAt = at(-48 * time.Hour) }), true, false, "expired at 2029-12-30T12:00:00Z"},
		{"expired and stopped", with(func(v *store.VM) {
			v.ExpiresAt = at(-time.Minute)
			v.State, v.Desired = api.StateStopped, api.DesiredStopped
		}), true, false, "expired"},
		{"expired and paused", with(func(v *store.VM) {
			v.ExpiresAt = at(-time.Minute)
			v.State, v.Desired = api.StatePaused, api.DesiredPaused
		}), true, false, "expired"},
		{"already deleting", with(func(v *store.VM) { v.ExpiresAt = at(-time.Minute); v.Desired = api.DesiredDeleted }), false, false, ""},
		{"idle since creation", with(func(v *store.VM) { v.IdleStop = time.Hour }), false, true, "idle for 1h0m0s"},
		{"idle, not yet", with(func(v *store.VM) { v.IdleStop = time.Hour + time.Second }), false, false, ""},
		{"active recently", with(func(v *store.VM) { v.IdleStop = 30 * time.Minute; v.LastActiveAt = at(-29 * time.Minute) }), false, false, ""},
		{"active long ago", with(func(v *store.VM) { v.IdleStop = 30 * time.Minute; v.LastActiveAt = at(-31 * time.Minute) }), false, true, "since 2030-01-01T11:29:00Z"},
		{"idle but paused", with(func(v *store.VM) { v.IdleStop = time.Minute; v.State, v.Desired = api.StatePaused, api.DesiredPaused }), false, false, ""},
		{"idle but stopped", with(func(v *store.VM) { v.IdleStop = time.Minute; v.State, v.Desired = api.StateStopped, api.DesiredStopped }), false, false, ""},
		{"idle but still starting", with(func(v *store.VM) { v.IdleStop = time.Minute; v.State = api.StateStarting }), false, false, ""},
		{"expiry wins over idle", with(func(v *store.VM) { v.IdleStop = time.Minute; v.ExpiresAt = at(0) }), true, false, "expired"},
	}
	for _, tc := range tests {
		d := vm.LifetimeDue(tc.v, now)
		if d.Delete != tc.delete || d.Stop != tc.stop || !strings.Contains(d.Reason, tc.reason) {
			t.Errorf("%s: %+v, want delete %v stop %v reason with %q", tc.name, d, tc.delete, tc.stop, tc.reason)
		}
	}
}

// lifecycleService is a service over a fresh store, records only, with the clock given.
func lifecycleService(t *testing.T, st store.Store, c *fakeClock, p vm.TTLPolicy) *vm.Service {
	t.Helper()
	svc := vm.NewService(vm.ServiceConfig{Store: st, Templates: templates{}, Node: "n1", TTL: p})
	svc.SetClock(c.Now)
	return svc
}

func addOwner(t *testing.T, st store.Store, id string) store.User {
	t.Helper()
	u := store.User{ID: id, Email: id + "@example.com", Verified: true,
		Quota: api.Quota{VMs: 20, CPUs: 20, MemoryMB: 20000, DiskGB: 100}}
	if err := st.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestCreateLifetimes: a create's ttl and idle_stop against the node's and
// the user's limits, on both stores, with the clock injected.
func TestCreateLifetimes(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		ctx := context.Background()
		c := newClock()
		svc := lifecycleService(t, st, c, vm.TTLPolicy{Max: 4 * time.Hour})
		plain, limited, defaulted := addOwner(t, st, "plain"), addOwner(t, st, "limited"), addOwner(t, st, "defaulted")
		if err := st.SetTTLLimits(ctx, limited.ID, store.TTLLimits{Max: 2 * time.Hour}); err != nil {
			t.Fatal(err)
		}
		if err := st.SetTTLLimits(ctx, defaulted.ID, store.TTLLimits{Max: 3 * time.Hour, Default: 20 * time.Minute}); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			owner    store.User
			ttl      string
			idle     string
			field    string        // a 422 naming this field, or "" for success
			expires  time.Duration // 0: never
			idleStop string
		}{
			{plain, "30m", "", "", 30 * time.Minute, ""},
			{plain, "", "", "", 4 * time.Hour, ""}, // the node's maximum is the default
			{plain, "4h1m", "", "ttl", 0, ""},
			{plain, "30s", "", "ttl", 0, ""},
			{plain, "xyz", "", "ttl", 0, ""},
			{plain, "1h", "30m", "", time.Hour, "30m0s"},
			{plain, "1h", "10s", "idle_stop", 0, ""},
			{plain, "1h", "half an hour", "idle_stop", 0, ""},
			{limited, "3h", "", "ttl", 0, ""}, // the user's maximum is below the node's
			{limited, "", "", "", 2 * time.Hour, ""},
			{defaulted, "", "", "", 20 * time.Minute, ""},
			{defaulted, "3h", "", "", 3 * time.Hour, ""}, // a user's own maximum replaces the node's
		}
		for i, tc := range tests {
			r := api.CreateVMRequest{Name: "l" + string(rune('a'+i)), Template: "tiny", TTL: tc.ttl, IdleStop: tc.idle}
			v, err := svc.Create(ctx, tc.owner.ID, r)
			if tc.field != "" {
				var ve *vm.ValidationError
				if !errors.As(err, &ve) || ve.Field != tc.field {
					t.Errorf("%d: ttl %q idle %q: error %v, want a validation error on %s", i, tc.ttl, tc.idle, err, tc.field)
				}
				continue
			}
			if err != nil {
				t.Errorf("%d: %v", i, err)
				continue
			}
			if v.ExpiresAt == nil || !v.ExpiresAt.Equal(c.Now().Add(tc.expires)) {
				t.Errorf("%d: expires %v, want now+%v", i, v.ExpiresAt, tc.expires)
			}
			if v.IdleStop != tc.idleStop {
				t.Errorf("%d: idle stop %q, want %q", i, v.IdleStop, tc.idleStop)
			}
		}
		// Without any maximum, a VM created without a TTL never expires.
		free := lifecycleService(t, st, c, vm.TTLPolicy{})
		v, err := free.Create(ctx, plain.ID, api.CreateVMRequest{Name: "forever", Template: "tiny"})
		if err != nil || v.ExpiresAt != nil {
			t.Fatalf("forever: %v %v", v.ExpiresAt, err)
		}
	})
}

// TestExtend: extend moves expiry to now+ttl (also for a VM without one,
// also earlier than before), within the limits; not for a VM being deleted.
func TestExtend(t *testing.T) {
	st := storetest.Backends()[0].Open(t)
	ctx := context.Background()
	c := newClock()
	svc := lifecycleService(t, st, c, vm.TTLPolicy{Max: 2 * time.Hour})
	u := addOwner(t, st, "u1")
	v, err := svc.Create(ctx, u.ID, api.CreateVMRequest{Name: "x", Template: "tiny", TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(50 * time.Minute)
	got, err := svc.Extend(ctx, u, "x", "30m")
	if err != nil || !got.ExpiresAt.Equal(c.Now().Add(30*time.Minute)) {
		t.Fatalf("extend: %v %v, want %v", got.ExpiresAt, err, c.Now().Add(30*time.Minute))
	}
	got, err = svc.Extend(ctx, u, v.ID, "5m") // shorter than what is left: still now+ttl
	if err != nil || !got.ExpiresAt.Equal(c.Now().Add(5*time.Minute)) {
		t.Fatalf("extend shorter: %v %v", got.ExpiresAt, err)
	}
	for _, bad := range []string{"", "3h", "10s", "x"} {
		var ve *vm.ValidationError
		if _, err := svc.Extend(ctx, u, "x", bad); !errors.As(err, &ve) || ve.Field != "ttl" {
			t.Errorf("extend %q: %v, want a validation error on ttl", bad, err)
		}
	}
	other := addOwner(t, st, "u2")
	if _, err := svc.Extend(ctx, other, v.ID, "30m"); !errors.Is(err, vm.ErrNotFound) {
		t.Fatalf("another owner's extend: %v", err)
	}
	if _, err := st.SetDesired(ctx, v.ID, api.DesiredDeleted); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Extend(ctx, u, "x", "30m"); !errors.Is(err, vm.ErrConflict) {
		t.Fatalf("extend of a deleting vm: %v", err)
	}
}

// TestPauseRules: which pause and resume requests make sense in which state.
func TestPauseRules(t *testing.T) {
	st := storetest.Backends()[0].Open(t)
	ctx := context.Background()
	svc := lifecycleService(t, st, newClock(), vm.TTLPolicy{})
	u := addOwner(t, st, "u1")
	tests := []struct {
		state   api.State
		desired api.DesiredState
		pause   string // "to" the desired state it leads to, or "conflict"
		resume  string
	}{
		{api.StateRunning, api.DesiredRunning, "paused", "running"},
		{api.StatePaused, api.DesiredPaused, "paused", "running"},
		{api.StateRunning, api.DesiredPaused, "paused", "running"}, // pause on its way
		{api.StateStopped, api.DesiredStopped, "conflict", "conflict"},
		{api.StateStarting, api.DesiredRunning, "conflict", "conflict"},
		{api.StateError, api.DesiredRunning, "conflict", "conflict"},
		{api.StateStopping, api.DesiredStopped, "conflict", "conflict"},
		{api.StateDeleting, api.DesiredDeleted, "conflict", "conflict"},
	}
	for i, tc := range tests {
		for _, op := range []string{"pause", "resume"} {
			name := string(rune('a'+i)) + op
			v, err := svc.Create(ctx, u.ID, api.CreateVMRequest{Name: name, Template: "tiny"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.SetState(ctx, v.ID, tc.state, "test"); err != nil {
				t.Fatal(err)
			}
			if _, err := st.SetDesired(ctx, v.ID, tc.desired); err != nil {
				t.Fatal(err)
			}
			f, want := svc.Pause, tc.pause
			if op == "resume" {
				f, want = svc.Resume, tc.resume
			}
			got, err := f(ctx, u, name)
			said := string(tc.state)
			if tc.desired == api.DesiredDeleted {
				said = "being deleted"
			}
			switch {
			case want == "conflict":
				if !errors.Is(err, vm.ErrConflict) || !strings.Contains(err.Error(), said) {
					t.Errorf("%s %s/%s: %v, want a conflict naming the state", op, tc.state, tc.desired, err)
				}
			case err != nil:
				t.Errorf("%s %s/%s: %v", op, tc.state, tc.desired, err)
			case string(got.DesiredState) != want:
				t.Errorf("%s %s/%s: desired %s, want %s", op, tc.state, tc.desired, got.DesiredState, want)
			}
		}
	}
}

// TestTouch: activity is written at most once per VM every ten seconds
// and never moves back; actions (start, pause, extend) count as activity.
func TestTouch(t *testing.T) {
	st := storetest.Backends()[0].Open(t)
	ctx := context.Background()
	c := newClock()
	svc := lifecycleService(t, st, c, vm.TTLPolicy{})
	u := addOwner(t, st, "u1")
	v, err := svc.Create(ctx, u.ID, api.CreateVMRequest{Name: "x", Template: "tiny", IdleStop: "5m"})
	if err != nil {
		t.Fatal(err)
	}
	active := func() time.Time {
		t.Helper()
		got, err := st.GetVM(ctx, v.ID)
		if err != nil || got.LastActiveAt == nil {
			t.Fatalf("last active: %v %v", got.LastActiveAt, err)
		}
		return *got.LastActiveAt
	}
	t0 := c.Now()
	svc.Touch(ctx, v.ID)
	c.Advance(5 * time.Second)
	svc.Touch(ctx, v.ID)
	if got := active(); !got.Equal(t0) {
		t.Fatalf("second touch within 10s written: %v, want %v", got, t0)
	}
	c.Advance(6 * time.Second)
	svc.Touch(ctx, v.ID)
	if got := active(); !got.Equal(t0.Add(11 * time.Second)) {
		t.Fatalf("touch after 11s: %v", got)
	}
	c.Advance(time.Minute)
	if _, err := svc.Start(ctx, u, "x"); err != nil {
		t.Fatal(err)
	}
	if got := active(); !got.Equal(c.Now()) {
		t.Fatalf("start is not activity: %v, want %v", got, c.Now())
	}
	c.Advance(time.Minute)
	if _, err := svc.Extend(ctx, u, "x", "1h"); err != nil {
		t.Fatal(err)
	}
	if got := active(); !got.Equal(c.Now()) {
		t.Fatalf("extend is not activity: %v, want %v", got, c.Now())
	}
	c.Advance(time.Minute)
	if _, err := svc.Get(ctx, u, "x"); err != nil {
		t.Fatal(err)
	}
	if got := active(); got.Equal(c.Now()) {
		t.Fatal("a read counted as activity")
	}
}

func TestCheckTTLLimits(t *testing.T) {
	for _, tc := range []struct {
		l  store.TTLLimits
		ok bool
	}{
		{store.TTLLimits{}, true},
		{store.TTLLimits{Max: 2 * time.Hour}, true},
		{store.TTLLimits{Max: 2 * time.Hour, Default: time.Hour}, true},
		{store.TTLLimits{Default: time.Hour}, true}, // under the node's maximum, checked at create
		{store.TTLLimits{Max: time.Hour, Default: 2 * time.Hour}, false},
		{store.TTLLimits{Max: -time.Hour}, false},
		{store.TTLLimits{Max: 1500 * time.Millisecond}, false},
	} {
		if err := vm.CheckTTLLimits(tc.l); (err == nil) != tc.ok {
			t.Errorf("%+v: %v, want ok %v", tc.l, err, tc.ok)
		}
	}
}
