package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// TestStore runs the same suite on every backend, each case on a fresh database.
func TestStore(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		f    func(t *testing.T, s store.Store)
	}{
		{"users", testUsers},
		{"duplicate email", testDuplicateEmail},
		{"tokens", testTokens},
		{"sessions", testSessions},
		{"vms", testVMs},
		{"missing vm", testMissingVM},
		{"name unique per owner", testNameUniquePerOwner},
		{"quota exceeded", testQuotaExceeded},
		{"quota lowered below usage", testQuotaLowered},
		{"concurrent creates respect quota", testConcurrentCreates},
		{"concurrent writes", testConcurrentWrites},
		{"change feed", testChanges},
		{"change feed in commit order", testChangesInCommitOrder},
		{"usage recount", testRecountUsage},
		{"change feed pruned", testPruneChanges},
		{"lifecycle", testLifecycle},
		{"guest readiness and addresses", testGuest},
	}
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) { t.Parallel(); c.f(t, b.Open(t)) })
		}
	})
}

var bigQuota = api.Quota{VMs: 100, CPUs: 100, MemoryMB: 100000, DiskGB: 1000}

func addUser(t *testing.T, s store.Store, id string, q api.Quota) store.User {
	t.Helper()
	u := store.User{ID: id, Email: id + "@example.com", PasswordHash: "hash-" + id, Quota: q,
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := s.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("create user %s: %v", id, err)
	}
	return u
}

func newVM(id, owner, name string, cpu, mem, disk int) store.VM {
	return store.VM{ID: id, OwnerID: owner, Name: name, Template: "tiny", CPU: cpu, MemoryMB: mem, DiskGB: disk,
		UserData: "#cloud-config\n", State: api.StatePending, Desired: api.DesiredRunning, Message: "queued"}
}

func mustErr(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func usage(t *testing.T, s store.Store, id string) api.Quota {
	t.Helper()
	u, err := s.GetUser(context.Background(), id)
	if err != nil {
		t.Fatalf("get user %s: %v", id, err)
	}
	return u.Usage
}

func testUsers(t *testing.T, s store.Store) {
	ctx := context.Background()
	// A non-UTC zone and nanoseconds: the store keeps microseconds, in UTC.
	created := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.FixedZone("x", 3600))
	want := store.User{ID: "u1", Email: "Alice@Example.COM", PasswordHash: "h1", Admin: true,
		Quota: api.Quota{VMs: 2, CPUs: 4, MemoryMB: 2048, DiskGB: 20}, CreatedAt: created}
	if err := s.CreateUser(ctx, want); err != nil {
		t.Fatal(err)
	}
	want.Email = "alice@example.com"
	want.CreatedAt = created.Truncate(time.Microsecond).UTC()

	got, err := s.GetUser(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("created_at location = %v, want UTC", got.CreatedAt.Location())
	}
	if got != want {
		t.Fatalf("get user:\n got %+v\nwant %+v", got, want)
	}
	for _, email := range []string{"alice@example.com", "ALICE@example.com"} {
		got, err = s.GetUserByEmail(ctx, email)
		if err != nil || got.ID != "u1" {
			t.Fatalf("get by email %s: %+v, %v", email, got, err)
		}
	}

	if err := s.SetVerified(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPasswordHash(ctx, "u1", "h2"); err != nil {
		t.Fatal(err)
	}
	q := api.Quota{VMs: 5, CPUs: 6, MemoryMB: 7, DiskGB: 8}
	if err := s.SetQuota(ctx, "u1", q); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetUser(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Verified || got.PasswordHash != "h2" || got.Quota != q || got.Usage != (api.Quota{}) || got.Disabled {
		t.Fatalf("after updates: %+v", got)
	}
	for _, want := range []bool{true, false} {
		if err := s.SetDisabled(ctx, "u1", want); err != nil {
			t.Fatal(err)
		}
		if got, err = s.GetUser(ctx, "u1"); err != nil || got.Disabled != want {
			t.Fatalf("after SetDisabled(%v): %+v, %v", want, got, err)
		}
	}

	u2 := store.User{ID: "u2", Email: "bob@example.com", PasswordHash: "h", CreatedAt: created.Add(time.Second)}
	if err := s.CreateUser(ctx, u2); err != nil {
		t.Fatal(err)
	}
	// A zero CreatedAt is filled in by the store.
	if err := s.CreateUser(ctx, store.User{ID: "u3", Email: "carol@example.com"}); err != nil {
		t.Fatal(err)
	}
	users, err := s.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, u := range users {
		ids = append(ids, u.ID)
	}
	if strings.Join(ids, ",") != "u1,u2,u3" {
		t.Fatalf("list users = %v, want u1,u2,u3 by creation", ids)
	}
	if users[2].CreatedAt.IsZero() {
		t.Errorf("zero created_at was not filled in")
	}

	missing := []struct {
		name string
		err  error
	}{
		{"get", func() error { _, err := s.GetUser(ctx, "nope"); return err }()},
		{"get by email", func() error { _, err := s.GetUserByEmail(ctx, "nope@example.com"); return err }()},
		{"set verified", s.SetVerified(ctx, "nope")},
		{"set password", s.SetPasswordHash(ctx, "nope", "x")},
		{"set quota", s.SetQuota(ctx, "nope", q)},
		{"set disabled", s.SetDisabled(ctx, "nope", true)},
	}
	for _, m := range missing {
		mustErr(t, m.err, store.ErrNotFound, m.name+" of a missing user")
	}
}

func testDuplicateEmail(t *testing.T, s store.Store) {
	ctx := context.Background()
	addUser(t, s, "u1", bigQuota)
	cases := []struct {
		name string
		u    store.User
	}{
		{"same email", store.User{ID: "u2", Email: "u1@example.com"}},
		{"same email in other case", store.User{ID: "u3", Email: "U1@Example.Com"}},
		{"same id", store.User{ID: "u1", Email: "other@example.com"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mustErr(t, s.CreateUser(ctx, c.u), store.ErrConflict, "create")
		})
	}
}

func testTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	addUser(t, s, "u1", bigQuota)
	now := time.Now().UTC()
	for _, tok := range []store.Token{
		{Hash: "live", Kind: "verify", UserID: "u1", ExpiresAt: now.Add(time.Hour)},
		{Hash: "expired", Kind: "verify", UserID: "u1", ExpiresAt: now.Add(-time.Second)},
	} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	mustErr(t, s.CreateToken(ctx, store.Token{Hash: "live", Kind: "verify", UserID: "u1", ExpiresAt: now}),
		store.ErrConflict, "duplicate token")
	mustErr(t, s.CreateToken(ctx, store.Token{Hash: "orphan", Kind: "verify", UserID: "nope", ExpiresAt: now}),
		store.ErrNotFound, "token of a missing user")

	cases := []struct {
		name, kind, hash string
		want             error
	}{
		{"wrong kind", "reset", "live", store.ErrNotFound},
		{"expired", "verify", "expired", store.ErrNotFound},
		{"unknown", "verify", "nope", store.ErrNotFound},
		{"first use", "verify", "live", nil},
		{"second use", "verify", "live", store.ErrNotFound},
	}
	for _, c := range cases {
		got, err := s.ConsumeToken(ctx, c.kind, c.hash, now)
		if c.want != nil {
			mustErr(t, err, c.want, c.name)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got.Hash != "live" || got.UserID != "u1" || got.Kind != "verify" ||
			!got.ExpiresAt.Equal(now.Add(time.Hour).Truncate(time.Microsecond)) {
			t.Fatalf("%s: got %+v", c.name, got)
		}
	}
}

func testSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	addUser(t, s, "u1", bigQuota)
	addUser(t, s, "u2", bigQuota)
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, se := range []store.Session{
		{ID: "a", UserID: "u1", Kind: "browser", CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
		{ID: "b", UserID: "u1", Kind: "cli", CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
		{ID: "c", UserID: "u1", Kind: "cli", CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
		{ID: "d", UserID: "u2", Kind: "cli", CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
	} {
		if err := s.CreateSession(ctx, se); err != nil {
			t.Fatal(err)
		}
	}
	mustErr(t, s.CreateSession(ctx, store.Session{ID: "a", UserID: "u1", Kind: "cli", ExpiresAt: now}),
		store.ErrConflict, "duplicate session")
	mustErr(t, s.CreateSession(ctx, store.Session{ID: "z", UserID: "nope", Kind: "cli", ExpiresAt: now}),
		store.ErrNotFound, "session of a missing user")

	got, err := s.GetSession(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	want := store.Session{ID: "a", UserID: "u1", Kind: "browser", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if got.ID != want.ID || got.UserID != want.UserID || got.Kind != want.Kind || !got.CreatedAt.Equal(want.CreatedAt) ||
		!got.ExpiresAt.Equal(want.ExpiresAt) || got.RevokedAt != nil {
		t.Fatalf("get session:\n got %+v\nwant %+v", got, want)
	}

	revoked := now.Add(time.Minute)
	if err := s.RevokeSession(ctx, "a", revoked); err != nil {
		t.Fatal(err)
	}
	// A second revocation keeps the first time.
	if err := s.RevokeSession(ctx, "a", revoked.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetSession(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got.RevokedAt == nil || !got.RevokedAt.Equal(revoked) || got.RevokedAt.Location() != time.UTC {
		t.Fatalf("revoked_at = %v, want %v", got.RevokedAt, revoked)
	}
	mustErr(t, s.RevokeSession(ctx, "nope", now), store.ErrNotFound, "revoke missing session")
	_, err = s.GetSession(ctx, "nope")
	mustErr(t, err, store.ErrNotFound, "get missing session")

	// Only sessions still open are revoked and named ("a" already was).
	ended, err := s.RevokeUserSessions(ctx, "u1", "c", now)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ended, ",") != "b" {
		t.Fatalf("revoked %v, want [b]", ended)
	}
	for id, wantRevoked := range map[string]bool{"a": true, "b": true, "c": false, "d": false} {
		got, err := s.GetSession(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if (got.RevokedAt != nil) != wantRevoked {
			t.Errorf("session %s revoked = %v, want %v", id, got.RevokedAt, wantRevoked)
		}
	}
}

func testVMs(t *testing.T, s store.Store) {
	ctx := context.Background()
	addUser(t, s, "u1", bigQuota)
	addUser(t, s, "u2", bigQuota)
	base := time.Now().UTC().Truncate(time.Microsecond)
	vms := []store.VM{
		newVM("v1", "u1", "web", 2, 512, 5),
		newVM("v2", "u2", "db", 1, 256, 1),
		newVM("v3", "u1", "cache", 1, 128, 2),
	}
	for i := range vms {
		vms[i].CreatedAt = base.Add(time.Duration(i) * time.Second)
		vms[i].UpdatedAt = vms[i].CreatedAt
		if err := s.CreateVM(ctx, vms[i]); err != nil {
			t.Fatal(err)
		}
	}
	if got := usage(t, s, "u1"); got != (api.Quota{VMs: 2, CPUs: 3, MemoryMB: 640, DiskGB: 7}) {
		t.Fatalf("u1 usage = %+v", got)
	}

	got, err := s.GetVM(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, vms[0]) {
		t.Fatalf("get vm:\n got %+v\nwant %+v", got, vms[0])
	}
	got, err = s.GetVMByName(ctx, "u1", "cache")
	if err != nil || got.ID != "v3" {
		t.Fatalf("get by name: %+v, %v", got, err)
	}
	_, err = s.GetVMByName(ctx, "u2", "cache")
	mustErr(t, err, store.ErrNotFound, "another owner's vm by name")

	lists := []struct {
		owner string
		want  string
	}{
		{"u1", "v1,v3"},
		{"u2", "v2"},
		{"", "v1,v2,v3"},
		{"nobody", ""},
	}
	for _, l := range lists {
		list, err := s.ListVMs(ctx, l.owner)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, v := range list {
			ids = append(ids, v.ID)
		}
		if strings.Join(ids, ",") != l.want {
			t.Errorf("list vms of %q = %v, want %s", l.owner, ids, l.want)
		}
	}

	got, err = s.SetDesired(ctx, "v1", api.DesiredStopped)
	if err != nil {
		t.Fatal(err)
	}
	if got.Desired != api.DesiredStopped || got.State != api.StatePending || !got.UpdatedAt.After(vms[0].UpdatedAt) {
		t.Fatalf("after set desired: %+v", got)
	}
	for _, st := range []api.State{api.StateProvisioning, api.StateRunning} {
		got, err = s.SetState(ctx, "v1", st, "now "+string(st))
		if err != nil {
			t.Fatal(err)
		}
		if got.State != st || got.Message != "now "+string(st) || got.Desired != api.DesiredStopped {
			t.Fatalf("after set state %s: %+v", st, got)
		}
	}
	if err := s.SetNode(ctx, "v1", "node-a"); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetVM(ctx, "v1")
	if err != nil || got.Node != "node-a" || got.State != api.StateRunning {
		t.Fatalf("after set node: %+v, %v", got, err)
	}

	events, err := s.ListEvents(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, e := range events {
		if e.VMID != "v1" || e.Time.Location() != time.UTC {
			t.Errorf("event %+v", e)
		}
		states = append(states, string(e.State)+":"+e.Message)
	}
	if strings.Join(states, ",") != "pending:queued,provisioning:now provisioning,running:now running" {
		t.Fatalf("events = %v", states)
	}
	if !events[0].Time.Equal(vms[0].CreatedAt) {
		t.Errorf("first event time = %v, want creation time %v", events[0].Time, vms[0].CreatedAt)
	}

	if err := s.DeleteVM(ctx, "v1"); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetVM(ctx, "v1")
	mustErr(t, err, store.ErrNotFound, "get deleted vm")
	_, err = s.ListEvents(ctx, "v1")
	mustErr(t, err, store.ErrNotFound, "events of deleted vm")
	if got := usage(t, s, "u1"); got != (api.Quota{VMs: 1, CPUs: 1, MemoryMB: 128, DiskGB: 2}) {
		t.Fatalf("u1 usage after delete = %+v", got)
	}
	if err := s.DeleteVM(ctx, "v3"); err != nil {
		t.Fatal(err)
	}
	if got := usage(t, s, "u1"); got != (api.Quota{}) {
		t.Fatalf("u1 usage after deleting all = %+v", got)
	}
	if got := usage(t, s, "u2"); got != (api.Quota{VMs: 1, CPUs: 1, MemoryMB: 256, DiskGB: 1}) {
		t.Fatalf("u2 usage = %+v", got)
	}
	// The name is free again.
	if err := s.CreateVM(ctx, newVM("v4", "u1", "web", 1, 64, 1)); err != nil {
		t.Fatal(err)
	}
}

func testMissingVM(t *testing.T, s store.Store) {
	ctx := context.Background()
	cases := []struct {
		name string
		err  error
	}{
		{"get", func() error { _, err := s.GetVM(ctx, "nope"); return err }()},
		{"get by name", func() error { _, err := s.GetVMByName(ctx, "nobody", "nope"); return err }()},
		{"set desired", func() error { _, err := s.SetDesired(ctx, "nope", api.DesiredRunning); return err }()},
		{"set state", func() error { _, err := s.SetState(ctx, "nope", api.StateRunning, ""); return err }()},
		{"set node", s.SetNode(ctx, "nope", "n")},
		{"delete", s.DeleteVM(ctx, "nope")},
		{"list events", func() error { _, err := s.ListEvents(ctx, "nope"); return err }()},
		{"create for a missing owner", s.CreateVM(ctx, newVM("v", "nobody", "x", 1, 64, 1))},
	}
	for _, c := range cases {
		mustErr(t, c.err, store.ErrNotFound, c.name)
	}
}

func testNameUniquePerOwner(t *testing.T, s store.Store) {
	ctx := context.Background()
	addUser(t, s, "u1", bigQuota)
	addUser(t, s, "u2", bigQuota)
	if err := s.CreateVM(ctx, newVM("v1", "u1", "web", 2, 512, 5)); err != nil {
		t.Fatal(err)
	}
	before := usage(t, s, "u1")
	mustErr(t, s.CreateVM(ctx, newVM("v2", "u1", "web", 1, 64, 1)), store.ErrConflict, "same name, same owner")
	mustErr(t, s.CreateVM(ctx, newVM("v1", "u2", "other", 1, 64, 1)), store.ErrConflict, "same id")
	if got := usage(t, s, "u1"); got != before {
		t.Fatalf("usage after conflict = %+v, want %+v (rolled back)", got, before)
	}
	if got := usage(t, s, "u2"); got != (api.Quota{}) {
		t.Fatalf("u2 usage after conflict = %+v, want zero (rolled back)", got)
	}
	if err := s.CreateVM(ctx, newVM("v3", "u2", "web", 1, 64, 1)); err != nil {
		t.Fatalf("same name, other owner: %v", err)
	}
}

func testQuotaExceeded(t *testing.T, s store.Store) {
	ctx := context.Background()
	q := api.Quota{VMs: 2, CPUs: 4, MemoryMB: 1024, DiskGB: 10}
	addUser(t, s, "u1", q)
	// Uses cpus 2 of 4, memory 512 of 1024, disk 5 of 10, vms 1 of 2.
	if err := s.CreateVM(ctx, newVM("v0", "u1", "first", 2, 512, 5)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name           string
		cpu, mem, disk int
		want           error
		wantIn         string
	}{
		{"cpus", 3, 64, 1, store.ErrQuotaExceeded, "cpu: 3 asked, 2 left of 4"},
		{"memory", 1, 513, 1, store.ErrQuotaExceeded, "memory: 513 MB asked, 512 MB left of 1024"},
		{"disk", 1, 64, 6, store.ErrQuotaExceeded, "disk: 6 GB asked, 5 GB left of 10"},
		{"exactly fits", 2, 512, 5, nil, ""},
		{"vms", 0, 0, 0, store.ErrQuotaExceeded, "vms: 1 asked, 0 left of 2"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := usage(t, s, "u1")
			err := s.CreateVM(ctx, newVM(fmt.Sprintf("v%d", i+1), "u1", c.name, c.cpu, c.mem, c.disk))
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			mustErr(t, err, c.want, "create")
			var qe *store.QuotaError
			if !errors.As(err, &qe) || qe.Error() != c.wantIn {
				t.Errorf("error %q: want a QuotaError saying %q", err, c.wantIn)
			}
			if got := usage(t, s, "u1"); got != before {
				t.Errorf("usage changed by a refused create: %+v, was %+v", got, before)
			}
			_, err = s.GetVMByName(ctx, "u1", c.name)
			mustErr(t, err, store.ErrNotFound, "refused vm stored")
		})
	}
	if got := usage(t, s, "u1"); got != q {
		t.Fatalf("usage = %+v, want the full quota %+v", got, q)
	}
	if err := s.DeleteVM(ctx, "v0"); err != nil {
		t.Fatal(err)
	}
	if got := usage(t, s, "u1"); got != (api.Quota{VMs: 1, CPUs: 2, MemoryMB: 512, DiskGB: 5}) {
		t.Fatalf("usage after delete = %+v", got)
	}
	if err := s.CreateVM(ctx, newVM("v9", "u1", "again", 2, 512, 5)); err != nil {
		t.Fatalf("create after freeing quota: %v", err)
	}
}

func testQuotaLowered(t *testing.T, s store.Store) {
	ctx := context.Background()
	addUser(t, s, "u1", bigQuota)
	if err := s.CreateVM(ctx, newVM("v1", "u1", "a", 4, 1024, 10)); err != nil {
		t.Fatal(err)
	}
	low := api.Quota{VMs: 1, CPUs: 1, MemoryMB: 64, DiskGB: 1}
	if err := s.SetQuota(ctx, "u1", low); err != nil {
		t.Fatal(err)
	}
	u, err := s.GetUser(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if u.Quota != low || u.Usage != (api.Quota{VMs: 1, CPUs: 4, MemoryMB: 1024, DiskGB: 10}) {
		t.Fatalf("after lowering: quota %+v usage %+v", u.Quota, u.Usage)
	}
	err = s.CreateVM(ctx, newVM("v2", "u1", "b", 0, 0, 0))
	mustErr(t, err, store.ErrQuotaExceeded, "create above lowered quota")
	// Usage above a lowered limit leaves nothing, not a negative amount.
	if want := "vms: 1 asked, 0 left of 1"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if err := s.DeleteVM(ctx, "v1"); err != nil {
		t.Fatalf("delete above lowered quota: %v", err)
	}
}

func testConcurrentCreates(t *testing.T, s store.Store) {
	ctx := context.Background()
	addUser(t, s, "u1", api.Quota{VMs: 10, CPUs: 1000, MemoryMB: 1 << 20, DiskGB: 1000})
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.CreateVM(ctx, newVM(fmt.Sprintf("v%02d", i), "u1", fmt.Sprintf("vm-%02d", i), i%4+1, 64*(i%3+1), i%5+1))
		})
	}
	wg.Wait()
	var want api.Quota
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
			want.VMs++
			want.CPUs += i%4 + 1
			want.MemoryMB += 64 * (i%3 + 1)
			want.DiskGB += i%5 + 1
		case errors.Is(err, store.ErrQuotaExceeded):
		default:
			t.Errorf("create %d: unexpected error %v", i, err)
		}
	}
	if ok != 10 {
		t.Fatalf("%d creates succeeded, want exactly 10", ok)
	}
	if got := usage(t, s, "u1"); got != want {
		t.Fatalf("usage = %+v, want the sum of the admitted vms %+v", got, want)
	}
	list, err := s.ListVMs(ctx, "u1")
	if err != nil || len(list) != 10 {
		t.Fatalf("list = %d vms, %v; want 10", len(list), err)
	}
}

// testConcurrentWrites mixes writers of every kind; none may fail with a
// lock error (SQLITE_BUSY) or lose an event.
func testConcurrentWrites(t *testing.T, s store.Store) {
	ctx := context.Background()
	addUser(t, s, "u1", bigQuota)
	const vms, rounds = 5, 10
	for i := range vms {
		if err := s.CreateVM(ctx, newVM(fmt.Sprintf("v%d", i), "u1", fmt.Sprintf("n%d", i), 1, 64, 1)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errc := make(chan error, vms*rounds*3)
	for i := range vms {
		id := fmt.Sprintf("v%d", i)
		for r := range rounds {
			wg.Go(func() {
				if _, err := s.SetState(ctx, id, api.StateRunning, fmt.Sprint(r)); err != nil {
					errc <- err
				}
			})
			wg.Go(func() {
				if _, err := s.SetDesired(ctx, id, api.DesiredStopped); err != nil {
					errc <- err
				}
			})
			wg.Go(func() {
				se := store.Session{ID: fmt.Sprintf("s-%s-%d", id, r), UserID: "u1", Kind: "cli", ExpiresAt: time.Now().Add(time.Hour)}
				if err := s.CreateSession(ctx, se); err != nil {
					errc <- err
				}
			})
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	for i := range vms {
		events, err := s.ListEvents(ctx, fmt.Sprintf("v%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != rounds+1 {
			t.Errorf("vm v%d has %d events, want %d", i, len(events), rounds+1)
		}
	}
}

// TestOpenConcurrently opens one fresh database from several goroutines at
// once: the migration lock lets exactly one of them create the schema.
func TestOpenConcurrently(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		dbURL, path := b.New(t)
		ctx := context.Background()
		const n = 4
		stores := make([]store.Store, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { stores[i], errs[i] = store.Open(ctx, dbURL, path) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("open %d: %v", i, err)
			}
			defer stores[i].Close()
		}
		// All handles share one working schema.
		addUser(t, stores[0], "u1", bigQuota)
		if _, err := stores[n-1].GetUser(ctx, "u1"); err != nil {
			t.Fatal(err)
		}
		for _, s := range stores {
			if err := s.Ping(ctx); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestReopen checks that migrations are not applied twice and data persists.
func TestReopen(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		dbURL, path := b.New(t)
		ctx := context.Background()
		s, err := store.Open(ctx, dbURL, path)
		if err != nil {
			t.Fatal(err)
		}
		addUser(t, s, "u1", bigQuota)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = store.Open(ctx, dbURL, path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer s.Close()
		if _, err := s.GetUser(ctx, "u1"); err != nil {
			t.Fatalf("after reopen: %v", err)
		}
	})
}

func TestSQLiteFileModes(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nested", "dir", "vmd.db")
	s, err := store.Open(context.Background(), "", path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for p, want := range map[string]os.FileMode{filepath.Dir(path): 0o700 | os.ModeDir, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s mode = %v, want %v", p, fi.Mode(), want)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, url, path, wantIn string
	}{
		{"mysql url", "mysql://u@h/db", "", "unsupported"},
		{"redis url", "redis://127.0.0.1:6379", "", "unsupported"},
		{"not a url", "host=localhost", "", "unsupported"},
		{"no sqlite path", "", "", "no database path"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := store.Open(context.Background(), c.url, c.path)
			if err == nil {
				s.Close()
				t.Fatal("open succeeded")
			}
			if !strings.Contains(err.Error(), c.wantIn) {
				t.Fatalf("error %q does not say %q", err, c.wantIn)
			}
		})
	}
}
