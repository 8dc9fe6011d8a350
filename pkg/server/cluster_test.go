package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/account"
	"github.com/vmdhq/vmd/pkg/account/accounttest"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/cluster"
	"github.com/vmdhq/vmd/pkg/console"
	"github.com/vmdhq/vmd/pkg/console/consoletest"
	"github.com/vmdhq/vmd/pkg/image"
	"github.com/vmdhq/vmd/pkg/mail"
	"github.com/vmdhq/vmd/pkg/ratelimit"
	"github.com/vmdhq/vmd/pkg/serial"
	"github.com/vmdhq/vmd/pkg/server"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm"
)

// clusterNode is one vmd HTTP stack of a two-node cluster on a shared store.
type clusterNode struct {
	url string
	reg *cluster.Registry
	srv *httptest.Server
	vms *vm.Service
}

func startClusterNode(t *testing.T, st store.Store, name string, secret []byte, capa cluster.Capacity) *clusterNode {
	t.Helper()
	return startClusterNodeWith(t, st, name, secret, capa, nil)
}

// startClusterNodeWith is startClusterNode with a console made by cons
// from the node's public URL (nil: no console).
func startClusterNodeWith(t *testing.T, st store.Store, name string, secret []byte, capa cluster.Capacity,
	cons func(publicURL string) *console.Console, tweak ...func(*server.Config)) *clusterNode {
	t.Helper()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	var h http.Handler
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(hs.Close)
	// No Run: the nodes heartbeat only at Register, so they must count as
	// alive for the whole test even when setup is slow (-race, parallel
	// tests); "silent node" backdates a heartbeat by an hour.
	reg, err := cluster.New(cluster.Config{Store: st, Name: name, AdvertiseURL: hs.URL, Capacity: capa, Secret: secret, Logger: log,
		Timeout: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(context.Background()); err != nil {
		t.Fatal(err)
	}
	accounts, err := account.New(account.Config{Store: st, Hasher: accounttest.Hasher(), Limiter: ratelimit.NewMemory(),
		Mailer: mail.LogSender{Log: log}, Secret: secret, PublicURL: hs.URL, DefaultQuota: testQuota, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	imgDir := filepath.Join(t.TempDir(), "images")
	makeTemplate(t, imgDir, "tiny")
	vms := vm.NewService(vm.ServiceConfig{Store: st, Templates: image.NewCatalog(imgDir), Node: name, Health: reg, Placement: reg,
		Screens: nodeScreens(name)})
	var con *console.Console
	if cons != nil {
		con = cons(hs.URL)
	}
	cfg := server.Config{Accounts: accounts, VMs: vms, Store: st, PublicURL: hs.URL, Log: log,
		Version: "test", Cluster: reg, Console: con}
	for _, f := range tweak {
		f(&cfg)
	}
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h = s
	return &clusterNode{url: hs.URL, reg: reg, srv: hs, vms: vms}
}

func clusterDo(t *testing.T, method, url, token string, body any, hdr map[string]string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, r)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, data
}

// TestClusterRouting runs two nodes on one store: creation placed on the
// other node is proxied there, placement cannot be forged, a full cluster
// says no_capacity, VM calls are authorized before any proxying, and a
// silent node's VMs read unknown.
func TestClusterRouting(t *testing.T) {
	t.Parallel()
	st := storetest.Backends()[0].Open(t)
	ctx := context.Background()
	secret := bytes.Repeat([]byte("s"), 32)
	capa := cluster.Capacity{CPUs: 4, MemoryMB: 4096, DiskGB: 50}
	a := startClusterNode(t, st, "a", secret, capa)
	b := startClusterNode(t, st, "b", secret, capa)

	token := func(email string) string {
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
		return lr.Token
	}
	ada, bob := token("ada@example.com"), token("bob@example.com")

	// With a draining, a create sent to a lands on b.
	if err := st.SetDraining(ctx, "a", true); err != nil {
		t.Fatal(err)
	}
	code, data := clusterDo(t, "POST", a.url+api.BasePath+"/vms", ada, api.CreateVMRequest{Name: "web", Template: "tiny"}, nil)
	var web api.VM
	if code != 201 || json.Unmarshal(data, &web) != nil || web.Node != "b" {
		t.Fatalf("create through a: %d %s", code, data)
	}

	for _, tc := range []struct {
		name       string
		method     string
		url, token string
		body       any
		hdr        map[string]string
		status     int
		code       string
	}{
		{"forged placement", "POST", b.url + api.BasePath + "/vms", ada, api.CreateVMRequest{Name: "x", Template: "tiny"},
			map[string]string{cluster.PlaceHeader: "b;" + "1;" + "00"}, 403, api.CodeForbidden},
		{"another node's placement", "POST", b.url + api.BasePath + "/vms", ada, api.CreateVMRequest{Name: "x", Template: "tiny"},
			map[string]string{cluster.PlaceHeader: a.reg.SignPlacement("a")}, 403, api.CodeForbidden},
		{"console unauthenticated", "GET", a.url + api.BasePath + "/vms/" + web.ID + "/console", "", nil, nil, 401, api.CodeUnauthenticated},
		{"console of another's vm", "GET", a.url + api.BasePath + "/vms/" + web.ID + "/console", bob, nil, nil, 404, api.CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, data := clusterDo(t, tc.method, tc.url, tc.token, tc.body, tc.hdr)
			wantError(t, code, data, tc.status, tc.code)
		})
	}

	t.Run("screenshot runs on the vm's node", func(t *testing.T) {
		if _, err := st.SetState(ctx, web.ID, api.StateRunning, "test"); err != nil {
			t.Fatal(err)
		}
		code, data := clusterDo(t, "GET", a.url+api.BasePath+"/vms/web/screenshot", ada, nil, nil)
		if code != 200 || string(data) != "\x89PNG\r\n\x1a\nnode b" {
			t.Fatalf("screenshot through a: %d %q", code, data)
		}
		code, data = clusterDo(t, "GET", a.url+api.BasePath+"/vms/"+web.ID+"/screenshot", bob, nil, nil)
		wantError(t, code, data, 404, api.CodeNotFound)
		code, data = clusterDo(t, "GET", a.url+api.BasePath+"/vms/"+web.ID+"/console/sessions", bob, nil, nil)
		wantError(t, code, data, 404, api.CodeNotFound)
	})

	t.Run("signed placement is honoured", func(t *testing.T) {
		code, data := clusterDo(t, "POST", b.url+api.BasePath+"/vms", ada, api.CreateVMRequest{Name: "pinned", Template: "tiny"},
			map[string]string{cluster.PlaceHeader: a.reg.SignPlacement("b")})
		var v api.VM
		if code != 201 || json.Unmarshal(data, &v) != nil || v.Node != "b" {
			t.Fatalf("create with placement: %d %s", code, data)
		}
	})

	t.Run("no capacity", func(t *testing.T) {
		if err := st.SetDraining(ctx, "b", true); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = st.SetDraining(ctx, "b", false) }()
		code, data := clusterDo(t, "POST", a.url+api.BasePath+"/vms", ada, api.CreateVMRequest{Name: "full", Template: "tiny"}, nil)
		wantError(t, code, data, 503, api.CodeNoCapacity)
	})

	t.Run("silent node's vms read unknown", func(t *testing.T) {
		if err := st.Heartbeat(ctx, "b", time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		// The node view is cached for a second: a's answer turns unknown once it is read again.
		testutil.Eventually(t, 5*time.Second, "web to read unknown", func() bool {
			var v api.VM
			code, data := clusterDo(t, "GET", a.url+api.BasePath+"/vms/web", ada, nil, nil)
			return code == 200 && json.Unmarshal(data, &v) == nil && v.State == api.StateUnknown
		})
		if stored, _ := st.GetVM(ctx, web.ID); stored.State == api.StateUnknown {
			t.Fatal("unknown was stored")
		}
	})

	// Last: it stops b. A forward that fails is the API's error shape, with
	// this request's id, not a bare proxy error.
	t.Run("unreachable owner", func(t *testing.T) {
		b.srv.Close()
		req, _ := http.NewRequest("GET", a.url+api.BasePath+"/vms/web/console", nil)
		req.Header.Set("Authorization", "Bearer "+ada)
		req.Header.Set("X-Request-Id", "fwd-1")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		data, _ := io.ReadAll(res.Body)
		wantError(t, res.StatusCode, data, 502, api.CodeUnavailable)
		var eb api.ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error.RequestID != "fwd-1" || !strings.Contains(eb.Error.Message, "node b") {
			t.Fatalf("answer: %s", data)
		}
	})
}

// TestClusterConsole: a console asked for through node a of a VM on node b
// is issued by b (links rebased to a); the WebSocket sent to a is
// forwarded to b by the token's VM, as the console tells it, after a's
// Origin check, which refuses without spending the token.
func TestClusterConsole(t *testing.T) {
	t.Parallel()
	st := storetest.Backends()[0].Open(t)
	ctx := context.Background()
	secret := bytes.Repeat([]byte("s"), 32)
	capa := cluster.Capacity{CPUs: 4, MemoryMB: 4096, DiskGB: 50}
	run, err := os.MkdirTemp("", "vmdc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	layout := vm.Layout{DataDir: t.TempDir(), RunDir: run}
	tokens := console.NewMemoryTokens(nil) // Redis in a real cluster; shared the same way
	cons := func(u string) *console.Console {
		c, err := console.New(console.Config{PublicURL: u, Store: st, Sockets: console.LayoutSockets{Layout: layout},
			Tokens: tokens, Log: slog.New(slog.NewJSONHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	a := startClusterNodeWith(t, st, "a", secret, capa, cons)
	// Only b serves serial logs: a request to a must be forwarded to work.
	startClusterNodeWith(t, st, "b", secret, capa, cons, func(c *server.Config) { c.Logs = &serial.Logs{Layout: layout} })
	acc, _ := account.New(account.Config{Store: st, Hasher: accounttest.Hasher(), Limiter: ratelimit.NewMemory(),
		Mailer: mail.LogSender{}, Secret: secret, PublicURL: a.url, DefaultQuota: testQuota})
	if _, err := acc.AddUser(ctx, "ada@example.com", "correct horse battery", false); err != nil {
		t.Fatal(err)
	}
	var lr api.LoginResponse
	code, data := clusterDo(t, "POST", a.url+api.BasePath+"/auth/login", "",
		api.LoginRequest{Email: "ada@example.com", Password: "correct horse battery", Client: "cli"}, nil)
	if code != 200 || json.Unmarshal(data, &lr) != nil {
		t.Fatalf("login: %d %s", code, data)
	}
	if err := st.SetDraining(ctx, "a", true); err != nil {
		t.Fatal(err)
	}
	var web api.VM
	code, data = clusterDo(t, "POST", a.url+api.BasePath+"/vms", lr.Token, api.CreateVMRequest{Name: "web", Template: "tiny"}, nil)
	if code != 201 || json.Unmarshal(data, &web) != nil || web.Node != "b" {
		t.Fatalf("create through a: %d %s", code, data)
	}
	if _, err := st.SetState(ctx, web.ID, api.StateRunning, "test"); err != nil {
		t.Fatal(err)
	}
	consoletest.Silent(t, layout.Socket(web.ID, vm.VNCSocket))

	var res api.ConsoleResponse
	code, data = clusterDo(t, "GET", a.url+api.BasePath+"/vms/web/console", lr.Token, nil, nil)
	if code != 200 || json.Unmarshal(data, &res) != nil || !strings.HasPrefix(res.WSURL, "ws"+strings.TrimPrefix(a.url, "http")) {
		t.Fatalf("console token through a: %d %s", code, data)
	}
	_, st403, body := wsDial(t, res.WSURL, http.Header{"Origin": {"http://evil.example"}})
	wantError(t, st403, body, 403, api.CodeForbidden)
	// The forwarded request has no Origin: b wants the user's own credentials
	// (a browser's session cookie; here the bearer token).
	ws, status, body := wsDial(t, res.WSURL, http.Header{"Origin": {a.url}, "Authorization": {"Bearer " + lr.Token}})
	if ws == nil {
		t.Fatalf("console through a to b: %d %s", status, body)
	}
	ws.CloseNow()

	// The serial port and the serial log, asked of a, come from b.
	echoSerial(t, layout.Socket(web.ID, vm.SerialSocket))
	code, data = clusterDo(t, "GET", a.url+api.BasePath+"/vms/web/console", lr.Token, nil, nil)
	if code != 200 || json.Unmarshal(data, &res) != nil {
		t.Fatalf("console token through a: %d %s", code, data)
	}
	ws, status, body = wsDial(t, res.WSURL+"&type=serial", http.Header{"Origin": {a.url}, "Authorization": {"Bearer " + lr.Token}})
	if ws == nil {
		t.Fatalf("serial through a to b: %d %s", status, body)
	}
	readWS(t, ws, "~ # ")
	ws.CloseNow()
	appendLog(t, layout.VMFile(web.OwnerID, web.ID, vm.SerialFile), "from b\n")
	code, data = clusterDo(t, "GET", a.url+api.BasePath+"/vms/web/logs", lr.Token, nil, nil)
	if code != 200 || string(data) != "from b\n" {
		t.Fatalf("logs through a: %d %q", code, data)
	}
}

// TestCreateAdmissionOrder: a create is validated, then admitted against
// the quota, and only then placed, so a request that is out of bounds or
// over quota is told so, not that no node has room (nodes here have 4
// vCPUs and 4096 MB each, the quota 4 vCPUs and 2048 MB).
func TestCreateAdmissionOrder(t *testing.T) {
	t.Parallel()
	st := storetest.Backends()[0].Open(t)
	ctx := context.Background()
	secret := bytes.Repeat([]byte("s"), 32)
	a := startClusterNode(t, st, "a", secret, cluster.Capacity{CPUs: 4, MemoryMB: 4096, DiskGB: 50})
	startClusterNode(t, st, "b", secret, cluster.Capacity{CPUs: 4, MemoryMB: 4096, DiskGB: 50})
	acc, _ := account.New(account.Config{Store: st, Hasher: accounttest.Hasher(), Limiter: ratelimit.NewMemory(),
		Mailer: mail.LogSender{}, Secret: secret, PublicURL: a.url, DefaultQuota: testQuota})
	ada, err := acc.AddUser(ctx, "ada@example.com", "correct horse battery", false)
	if err != nil {
		t.Fatal(err)
	}
	var lr api.LoginResponse
	code, data := clusterDo(t, "POST", a.url+api.BasePath+"/auth/login", "",
		api.LoginRequest{Email: "ada@example.com", Password: "correct horse battery", Client: "cli"}, nil)
	if code != 200 || json.Unmarshal(data, &lr) != nil {
		t.Fatalf("login: %d %s", code, data)
	}
	for _, tc := range []struct {
		name   string
		req    api.CreateVMRequest
		status int
		code   string
		msg    string // "" for any
	}{
		{"over quota and over every node", api.CreateVMRequest{Name: "x", Template: "tiny", CPU: 9}, 403, api.CodeQuotaExceeded,
			"cpu: 9 asked, 4 left of 4"},
		{"cpu out of bounds", api.CreateVMRequest{Name: "x", Template: "tiny", CPU: 65}, 422, api.CodeValidation, ""},
		{"memory out of bounds", api.CreateVMRequest{Name: "x", Template: "tiny", MemoryMB: 262145}, 422, api.CodeValidation, ""},
		{"memory over quota", api.CreateVMRequest{Name: "x", Template: "tiny", MemoryMB: 8192}, 403, api.CodeQuotaExceeded,
			"memory: 8192 MB asked, 2048 MB left of 2048"},
		{"bad name", api.CreateVMRequest{Name: "X_1", Template: "tiny", CPU: 9}, 422, api.CodeValidation, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, data := clusterDo(t, "POST", a.url+api.BasePath+"/vms", lr.Token, tc.req, nil)
			wantError(t, code, data, tc.status, tc.code)
			if msg := errorMessage(t, data); tc.msg != "" && msg != tc.msg {
				t.Fatalf("message %q, want %q", msg, tc.msg)
			}
		})
	}
	// Within quota but above any node: no node has room.
	if err := st.SetQuota(ctx, ada.ID, api.Quota{VMs: 9, CPUs: 64, MemoryMB: 65536, DiskGB: 500}); err != nil {
		t.Fatal(err)
	}
	code, data = clusterDo(t, "POST", a.url+api.BasePath+"/vms", lr.Token, api.CreateVMRequest{Name: "x", Template: "tiny", CPU: 5}, nil)
	wantError(t, code, data, 503, api.CodeNoCapacity)
	if me, err := st.GetUserByEmail(ctx, "ada@example.com"); err != nil || me.Usage != (api.Quota{}) {
		t.Fatalf("usage after refused creates: %+v, %v", me.Usage, err)
	}
}

// nodeScreens answers every screenshot with a PNG signature and its node's name.
type nodeScreens string

func (n nodeScreens) Screenshot(context.Context, string) ([]byte, error) {
	return []byte("\x89PNG\r\n\x1a\nnode " + string(n)), nil
}
