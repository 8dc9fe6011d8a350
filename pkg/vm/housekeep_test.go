package vm_test

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm"
)

// rawExec runs q on the database behind a store, beside it: the API
// cannot make counters drift.
func rawExec(t *testing.T, dbURL, path, q string, args ...any) {
	t.Helper()
	ctx := context.Background()
	if dbURL != "" {
		pool, err := pgxpool.New(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		if _, err := pool.Exec(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
		return
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, q, args...); err != nil {
		t.Fatal(err)
	}
}

// TestHousekeeperFixesDrift: a pass sets drifted usage counters back to
// what the VM records hold, logs the drift, and prunes the change feed to
// its window.
func TestHousekeeperFixesDrift(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		dbURL, path := b.New(t)
		ctx := context.Background()
		st, err := store.Open(ctx, dbURL, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		u := newUser(t, st)
		svc := vm.NewService(vm.ServiceConfig{Store: st, Templates: templates{}, Node: "n1"})
		if _, err := svc.Create(ctx, u.ID, api.CreateVMRequest{Name: "web", Template: "tiny", CPU: 2, MemoryMB: 128, DiskGB: 3}); err != nil {
			t.Fatal(err)
		}
		rawExec(t, dbURL, path, `UPDATE users SET used_vms = 5, used_memory_mb = 0 WHERE id = $1`, u.ID)
		now := time.Now().Add(30 * 24 * time.Hour) // the feed's entries are a month old by then
		var logs bytes.Buffer
		h := vm.NewHousekeeper(vm.HousekeeperConfig{Store: st, KeepChanges: 7 * 24 * time.Hour,
			Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return now }})
		if _, err := svc.Start(ctx, u, "web"); err != nil { // a second feed entry, so one can go
			t.Fatal(err)
		}
		if err := h.Pass(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := st.GetUser(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := (api.Quota{VMs: 1, CPUs: 2, MemoryMB: 128, DiskGB: 3}); got.Usage != want {
			t.Fatalf("usage after a pass = %+v, want %+v", got.Usage, want)
		}
		if !strings.Contains(logs.String(), "drifted") || !strings.Contains(logs.String(), u.ID) ||
			!strings.Contains(logs.String(), "pruned the change feed") {
			t.Fatalf("log does not tell the drift and the pruning:\n%s", logs.String())
		}
		changes, err := st.ListChanges(ctx, u.ID, 0, 0)
		if err != nil || len(changes) != 1 {
			t.Fatalf("feed after pruning: %d entries (%v), want the newest only", len(changes), err)
		}
		logs.Reset()
		if err := h.Pass(ctx); err != nil || strings.Contains(logs.String(), "drifted") {
			t.Fatalf("second pass: %v\n%s", err, logs.String())
		}
	})
}
