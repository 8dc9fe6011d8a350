package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"testing"

	"github.com/vmdhq/vmd/pkg/account"
	"github.com/vmdhq/vmd/pkg/account/accounttest"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/cluster"
	"github.com/vmdhq/vmd/pkg/mail"
	"github.com/vmdhq/vmd/pkg/ratelimit"
	"github.com/vmdhq/vmd/pkg/server"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/qga"
)

// TestGuestRoutes: exec and files answer with the mapped codes: a stranger
// 404, a stopped VM 409, no agent 503 agent_unavailable, a bad path 422, an
// upload over the limit 413; an upload's body is not held to the 1 MiB
// limit of other requests.
func TestGuestRoutes(t *testing.T) {
	t.Parallel()
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

// nodeAgent is the guest agent of every VM on one node of the test cluster.
type nodeAgent struct {
	qga.Agent
	got []byte
}

func (a *nodeAgent) Exec(context.Context, qga.ExecRequest) (*qga.ExecResult, error) {
	return &qga.ExecResult{ExitCode: 7, Stdout: []byte("on b\n")}, nil
}

func (a *nodeAgent) Upload(_ context.Context, _ string, r io.Reader, _ fs.FileMode, _ qga.Progress) (int64, error) {
	b, err := io.ReadAll(r)
	a.got = b
	return int64(len(b)), err
}

type oneAgent struct{ a qga.Agent }

func (o oneAgent) Agent(string) (qga.Agent, error) { return o.a, nil }

// TestClusterGuestForwarded: exec and uploads sent to node a for a VM on
// node b run on b, after a has authorized the caller.
func TestClusterGuestForwarded(t *testing.T) {
	t.Parallel()
	st := storetest.Backends()[0].Open(t)
	ctx := context.Background()
	secret := bytes.Repeat([]byte("s"), 32)
	capa := cluster.Capacity{CPUs: 4, MemoryMB: 4096, DiskGB: 50}
	a := startClusterNode(t, st, "a", secret, capa)
	b := startClusterNode(t, st, "b", secret, capa)
	agent := &nodeAgent{}
	b.vms.SetGuest(vm.GuestConfig{Agents: oneAgent{agent}})
	tokens := map[string]string{}
	for _, email := range []string{"ada@example.com", "bob@example.com"} {
		acc, _ := account.New(account.Config{Store: st, Hasher: accounttest.Hasher(), Limiter: ratelimit.NewMemory(),
			Mailer: mail.LogSender{}, Secret: secret, PublicURL: a.url, DefaultQuota: testQuota})
		if _, err := acc.AddUser(ctx, email, "correct horse battery", false); err != nil {
			t.Fatal(err)
		}
		var lr api.LoginResponse
		code, data := clusterDo(t, "POST", a.url+api.BasePath+"/auth/login", "",
			api.LoginRequest{Email: email, Password: "correct horse battery", Client: "cli"}, nil)
		if code != 200 || json.Unmarshal(data, &lr) != nil {
			t.Fatalf("login %s: %d %s", email, code, data)
		}
		tokens[email] = lr.Token
	}
	ada, bob := tokens["ada@example.com"], tokens["bob@example.com"]
	if err := st.SetDraining(ctx, "a", true); err != nil {
		t.Fatal(err)
	}
	var web api.VM
	code, data := clusterDo(t, "POST", a.url+api.BasePath+"/vms", ada, api.CreateVMRequest{Name: "web", Template: "tiny"}, nil)
	if code != 201 || json.Unmarshal(data, &web) != nil || web.Node != "b" {
		t.Fatalf("create: %d %s", code, data)
	}
	if _, err := st.SetState(ctx, web.ID, api.StateRunning, "running"); err != nil {
		t.Fatal(err)
	}
	var res api.ExecResponse
	code, data = clusterDo(t, "POST", a.url+api.BasePath+"/vms/web/exec", ada, api.ExecRequest{Command: []string{"hostname"}}, nil)
	if code != 200 || json.Unmarshal(data, &res) != nil || res.ExitCode != 7 || res.Stdout != "on b\n" {
		t.Fatalf("exec through a: %d %s", code, data)
	}
	code, data = clusterDo(t, "POST", a.url+api.BasePath+"/vms/"+web.ID+"/exec", bob, api.ExecRequest{Command: []string{"true"}}, nil)
	wantError(t, code, data, 404, api.CodeNotFound)

	body := strings.Repeat("z", 3<<20) // above the 1 MiB of other requests, streamed through a
	req, _ := http.NewRequest("PUT", a.url+api.BasePath+"/vms/web/files?path=/tmp/z", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+ada)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || string(agent.got) != body {
		t.Fatalf("upload through a: %d, %d bytes arrived", resp.StatusCode, len(agent.got))
	}
}
