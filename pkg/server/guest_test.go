package server_test

import (
	"strings"
	"testing"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/server"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm"
)

// TestGuestRoutes: exec and files answer with the mapped codes: a stranger
// 404, a stopped VM 409, no agent 503 agent_unavailable, a bad path 422, an
// upload over the limit 413; an upload's body is not held to the 1 MiB
// limit of other requests.
func TestGuestRoutes(t *testing.T) {
	e := newEnvWith(t, storetest.Backends()[0], func(c *server.Config) {
		c.VMs.SetGuest(vm.GuestConfig{MaxUpload: 4 << 20})
	})
	ann, bob := e.signup("ann@example.com"), e.signup("bob@example.com")
	var v api.VM
	ann.mustDo("POST", "/vms", api.CreateVMRequest{Name: "web", Template: "tiny"}, 201, &v)
	run := api.ExecRequest{Command: []string{"true"}}
	st, data := ann.do("POST", "/vms/web/exec", run, nil)
	wantError(t, st, data, 409, api.CodeConflict)
	if _, err := e.store.SetState(t.Context(), v.ID, api.StateRunning, "running"); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 2<<20)
	tests := []struct {
		name         string
		as           *user
		method, path string
		body         any
		status       int
		code         string
	}{
		{"exec, no agent", ann, "POST", "/vms/web/exec", run, 503, api.CodeAgentUnavailable},
		{"exec, empty command", ann, "POST", "/vms/web/exec", api.ExecRequest{}, 422, api.CodeValidation},
		{"exec, bad json", ann, "POST", "/vms/web/exec", "{", 400, api.CodeBadRequest},
		{"exec, stranger", bob, "POST", "/vms/" + v.ID + "/exec", run, 404, api.CodeNotFound},
		{"put, relative path", ann, "PUT", "/vms/web/files?path=tmp/x", "x", 422, api.CodeValidation},
		{"put, dot dot", ann, "PUT", "/vms/web/files?path=/tmp/../x", "x", 422, api.CodeValidation},
		{"get, no path", ann, "GET", "/vms/web/files", nil, 422, api.CodeValidation},
		{"put, stranger", bob, "PUT", "/vms/" + v.ID + "/files?path=/tmp/x", "x", 404, api.CodeNotFound},
		{"get, stranger", bob, "GET", "/vms/" + v.ID + "/files?path=/etc/passwd", nil, 404, api.CodeNotFound},
		{"put, 2 MiB reaches the agent", ann, "PUT", "/vms/web/files?path=/tmp/x", big, 503, api.CodeAgentUnavailable},
		{"put, over the upload limit", ann, "PUT", "/vms/web/files?path=/tmp/x", strings.Repeat(big, 3), 413, "request_too_large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, data := tc.as.do(tc.method, tc.path, tc.body, nil)
			wantError(t, st, data, tc.status, tc.code)
		})
	}
}
