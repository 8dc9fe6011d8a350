package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// TestPostgresGoneIsUnavailable terminates the store's backends from another
// connection, as a PostgreSQL restart or failover does: the next call must
// fail with ErrUnavailable (503 for the API), not an unclassified driver
// error (500), and the pool must recover on the call after.
func TestPostgresGoneIsUnavailable(t *testing.T) {
	t.Parallel()
	dbURL := storetest.PostgresURL(t)
	ctx := context.Background()
	s, err := store.Open(ctx, dbURL, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	addUser(t, s, "usr_1", bigQuota)

	// pgxpool pings a connection idle for over a second before handing it
	// out and so hides a dead one; an attempt that was slower than that
	// proves nothing and is tried again.
	var got error
	for attempt := 0; attempt < 10 && got == nil; attempt++ {
		if _, err := s.GetUser(ctx, "usr_1"); err != nil {
			t.Fatalf("warm-up: %v", err)
		}
		if n := storetest.TerminateBackends(t, dbURL); n == 0 {
			t.Fatal("no backend of the store was terminated")
		}
		_, got = s.GetUser(ctx, "usr_1")
	}
	if !errors.Is(got, store.ErrUnavailable) {
		t.Fatalf("first call after the backends were terminated: %v, want ErrUnavailable", got)
	}
	if _, err := s.GetUser(ctx, "usr_1"); err != nil {
		t.Fatalf("the pool did not recover: %v", err)
	}
}
