package server_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/vmdhq/vmd/pkg/redisx"
	"github.com/vmdhq/vmd/pkg/redisx/redistest"
	"github.com/vmdhq/vmd/pkg/server"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// TestReadyzReportsEachService: /readyz names the store and Redis, and is
// 503 once Redis is gone (a Redis of the test's own, killed; the shared
// one is left alone).
func TestReadyzReportsEachService(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	shared, err := redisx.Open(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shared.Close() })
	e := newEnvWith(t, storetest.Backends()[0], func(c *server.Config) {
		c.Checks = map[string]func(context.Context) error{"redis": shared.Ping}
	})
	ready := func() (int, map[string]string) {
		t.Helper()
		res, err := e.srv.Client().Get(e.srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]string
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, out
	}
	if st, out := ready(); st != 200 || out["status"] != "ok" || out["store"] != "ok" || out["redis"] != "ok" {
		t.Fatalf("with everything up: %d %v", st, out)
	}
	srv.Kill()
	if st, out := ready(); st != 503 || out["status"] != "unavailable" || out["store"] != "ok" || out["redis"] != "unreachable" {
		t.Fatalf("with redis down: %d %v", st, out)
	}
}
