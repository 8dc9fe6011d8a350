package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// TestLifecycleRoutes: ttl and idle_stop on create, extend, pause and
// resume over HTTP, with their refusals (422 naming the field, 409, 404).
func TestLifecycleRoutes(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		alice, bob := e.signup("alice@example.com"), e.signup("bob@example.com")

		var v api.VM
		alice.mustDo("POST", "/vms", api.CreateVMRequest{Name: "ci", Template: "tiny", TTL: "30m", IdleStop: "10m"}, 201, &v)
		if v.ExpiresAt == nil || v.ExpiresAt.Sub(v.CreatedAt) != 30*time.Minute || v.IdleStop != "10m0s" {
			t.Fatalf("created %+v", v)
		}
		var plain api.VM
		alice.mustDo("POST", "/vms", api.CreateVMRequest{Name: "plain", Template: "tiny"}, 201, &plain)
		if st, data := alice.do("GET", "/vms/plain", nil, nil); st != 200 || strings.Contains(string(data), "expires_at") {
			t.Fatalf("a vm without ttl shows expires_at: %d %s", st, data)
		}

		for _, c := range []struct {
			body  api.CreateVMRequest
			field string
		}{
			{api.CreateVMRequest{Name: "a", Template: "tiny", TTL: "30s"}, "ttl"},
			{api.CreateVMRequest{Name: "a", Template: "tiny", TTL: "forever"}, "ttl"},
			{api.CreateVMRequest{Name: "a", Template: "tiny", IdleStop: "5s"}, "idle_stop"},
		} {
			st, data := alice.do("POST", "/vms", c.body, nil)
			wantError(t, st, data, 422, api.CodeValidation)
			if msg := errorMessage(t, data); !strings.HasPrefix(msg, c.field+":") {
				t.Errorf("%+v: message %q does not name %s", c.body, msg, c.field)
			}
		}

		var ext api.VM
		alice.mustDo("POST", "/vms/ci/extend", api.ExtendRequest{TTL: "2h"}, 200, &ext)
		if ext.ExpiresAt == nil || time.Until(*ext.ExpiresAt) < 119*time.Minute || time.Until(*ext.ExpiresAt) > 121*time.Minute {
			t.Fatalf("extended to %v, want about now+2h", ext.ExpiresAt)
		}
		st, data := alice.do("POST", "/vms/ci/extend", api.ExtendRequest{TTL: "10s"}, nil)
		wantError(t, st, data, 422, api.CodeValidation)
		st, data = alice.do("POST", "/vms/ci/extend", map[string]string{"ttl": "1h", "more": "x"}, nil)
		wantError(t, st, data, 400, api.CodeBadRequest)

		// Without a reconciler the VM stays pending: neither pause nor resume makes sense.
		st, data = alice.do("POST", "/vms/ci/pause", nil, nil)
		wantError(t, st, data, 409, api.CodeConflict)
		if msg := errorMessage(t, data); !strings.Contains(msg, "only a running VM can be paused") {
			t.Fatalf("pause message %q", msg)
		}
		st, data = alice.do("POST", "/vms/ci/resume", nil, nil)
		wantError(t, st, data, 409, api.CodeConflict)
		if _, err := e.store.SetState(t.Context(), v.ID, api.StateRunning, "test"); err != nil {
			t.Fatal(err)
		}
		var p api.VM
		alice.mustDo("POST", "/vms/ci/pause", nil, 202, &p)
		if p.DesiredState != api.DesiredPaused {
			t.Fatalf("after pause: %+v", p)
		}
		alice.mustDo("POST", "/vms/"+v.ID+"/resume", nil, 202, &p)
		if p.DesiredState != api.DesiredRunning {
			t.Fatalf("after resume: %+v", p)
		}

		for _, path := range []string{"/vms/" + v.ID + "/pause", "/vms/" + v.ID + "/resume", "/vms/" + v.ID + "/extend"} {
			st, data := bob.do("POST", path, api.ExtendRequest{TTL: "1h"}, nil)
			wantError(t, st, data, 404, api.CodeNotFound)
		}
	})
}
