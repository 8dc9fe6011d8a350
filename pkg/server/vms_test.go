package server_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

func TestVMRecords(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		alice, bob := e.signup("alice@example.com"), e.signup("bob@example.com")

		var v api.VM
		alice.mustDo("POST", "/vms", api.CreateVMRequest{Name: "web", Template: "tiny", CPU: 2, MemoryMB: 512, DiskGB: 5}, 201, &v)
		if !strings.HasPrefix(v.ID, "vm_") || len(v.ID) != 29 || v.Name != "web" || v.CPU != 2 || v.MemoryMB != 512 ||
			v.DiskGB != 5 || v.State != api.StatePending || v.DesiredState != api.DesiredRunning || v.CreatedAt.IsZero() {
			t.Fatalf("created %+v", v)
		}
		var def api.VM
		alice.mustDo("POST", "/vms", api.CreateVMRequest{Name: "db", Template: "tiny"}, 201, &def)
		if def.CPU != api.DefaultCPU || def.MemoryMB != api.DefaultMemoryMB || def.DiskGB != api.DefaultDiskGB {
			t.Fatalf("defaults not applied: %+v", def)
		}

		t.Run("get by id and by name, with events", func(t *testing.T) {
			for _, ref := range []string{v.ID, "web"} {
				var got api.VM
				alice.mustDo("GET", "/vms/"+ref, nil, 200, &got)
				if got.ID != v.ID || len(got.Events) == 0 || got.Events[0].State != api.StatePending {
					t.Fatalf("get %s = %+v", ref, got)
				}
			}
		})

		t.Run("usage counts the VMs", func(t *testing.T) {
			var me api.User
			alice.mustDo("GET", "/me", nil, 200, &me)
			want := api.Quota{VMs: 2, CPUs: 3, MemoryMB: 768, DiskGB: 6}
			if me.Usage != want {
				t.Fatalf("usage %+v, want %+v", me.Usage, want)
			}
		})

		t.Run("another user sees 404, never the VM", func(t *testing.T) {
			for _, c := range []struct{ method, path string }{
				{"GET", "/vms/" + v.ID}, {"POST", "/vms/" + v.ID + "/start"}, {"POST", "/vms/" + v.ID + "/stop"},
				{"POST", "/vms/" + v.ID + "/stop?force=true"}, {"DELETE", "/vms/" + v.ID}, {"GET", "/vms/web"}, {"DELETE", "/vms/web"},
			} {
				st, data := bob.do(c.method, c.path, nil, nil)
				wantError(t, st, data, 404, api.CodeNotFound)
				if strings.Contains(string(data), "alice") {
					t.Fatalf("%s %s leaks the owner: %s", c.method, c.path, data)
				}
			}
			var list []api.VM
			bob.mustDo("GET", "/vms", nil, 200, &list)
			if len(list) != 0 {
				t.Fatalf("bob lists %d VMs", len(list))
			}
			st, data := bob.do("GET", "/vms?all=true", nil, nil)
			wantError(t, st, data, 403, api.CodeForbidden)
			// Alice's VM is untouched.
			var got api.VM
			alice.mustDo("GET", "/vms/web", nil, 200, &got)
			if got.DesiredState != api.DesiredRunning {
				t.Fatalf("bob changed alice's VM: %+v", got)
			}
		})

		t.Run("names are unique per user, not globally", func(t *testing.T) {
			st, data := alice.do("POST", "/vms", api.CreateVMRequest{Name: "web", Template: "tiny"}, nil)
			wantError(t, st, data, 409, api.CodeConflict)
			// The store's words (a UNIQUE constraint) never reach the user.
			if msg := errorMessage(t, data); msg != "a VM named web already exists" {
				t.Fatalf("duplicate name: message %q", msg)
			}
			bob.mustDo("POST", "/vms", api.CreateVMRequest{Name: "web", Template: "tiny"}, 201, nil)
			var mine api.VM
			bob.mustDo("GET", "/vms/web", nil, 200, &mine)
			if mine.ID == v.ID {
				t.Fatal("bob's name lookup found alice's VM")
			}
		})

		t.Run("stop, start, delete", func(t *testing.T) {
			var got api.VM
			alice.mustDo("POST", "/vms/web/stop", nil, 202, &got)
			if got.DesiredState != api.DesiredStopped {
				t.Fatalf("stop: %+v", got)
			}
			alice.mustDo("POST", "/vms/web/start", nil, 202, &got)
			if got.DesiredState != api.DesiredRunning {
				t.Fatalf("start: %+v", got)
			}
			alice.mustDo("DELETE", "/vms/db", nil, 202, nil)
			st, data := alice.do("GET", "/vms/db", nil, nil)
			wantError(t, st, data, 404, api.CodeNotFound)
			var me api.User
			alice.mustDo("GET", "/me", nil, 200, &me)
			if me.Usage != (api.Quota{VMs: 1, CPUs: 2, MemoryMB: 512, DiskGB: 5}) {
				t.Fatalf("usage after delete %+v", me.Usage)
			}
		})

		t.Run("quota exceeded", func(t *testing.T) {
			st, data := alice.do("POST", "/vms", api.CreateVMRequest{Name: "big", Template: "tiny", CPU: 3}, nil)
			wantError(t, st, data, 403, api.CodeQuotaExceeded)
			if msg := errorMessage(t, data); msg != "cpu: 3 asked, 2 left of 4" {
				t.Fatalf("quota exceeded: message %q", msg)
			}
		})
	})
}

func TestQuotaRace(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		u := e.signup("racer@example.com")
		const n = 50
		var wg sync.WaitGroup
		codes := make([]int, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				codes[i], _ = u.do("POST", "/vms", api.CreateVMRequest{Name: fmt.Sprintf("vm-%d", i), Template: "tiny"}, nil)
			}(i)
		}
		wg.Wait()
		created, refused := 0, 0
		for _, c := range codes {
			switch c {
			case 201:
				created++
			case 403:
				refused++
			default:
				t.Errorf("unexpected status %d", c)
			}
		}
		if created != testQuota.VMs || refused != n-testQuota.VMs {
			t.Fatalf("created %d, refused %d; quota is %d VMs", created, refused, testQuota.VMs)
		}
		var me api.User
		u.mustDo("GET", "/me", nil, 200, &me)
		var list []api.VM
		u.mustDo("GET", "/vms", nil, 200, &list)
		if me.Usage.VMs != len(list) || me.Usage.CPUs != len(list)*api.DefaultCPU {
			t.Fatalf("usage %+v drifted from %d VMs", me.Usage, len(list))
		}
	})
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.Backends()[0])
	u := e.signup("ann@example.com")
	anon := &user{e: e, client: e.srv.Client()}
	long := strings.Repeat("a", 64)
	tests := []struct {
		name       string
		as         *user
		method     string
		path       string
		body       any
		wantStatus int
		wantCode   string
	}{
		{"signup bad json", anon, "POST", "/auth/signup", "{", 400, api.CodeBadRequest},
		{"signup unknown field", anon, "POST", "/auth/signup", `{"email":"a@b.co","password":"12345678","admin":true}`, 400, api.CodeBadRequest},
		{"signup bad email", anon, "POST", "/auth/signup", api.SignupRequest{Email: "not-an-email", Password: "long enough pw"}, 422, api.CodeValidation},
		{"signup display name", anon, "POST", "/auth/signup", api.SignupRequest{Email: "Ann <a@b.co>", Password: "long enough pw"}, 422, api.CodeValidation},
		{"signup short password", anon, "POST", "/auth/signup", api.SignupRequest{Email: "x@example.com", Password: "short"}, 422, api.CodeValidation},
		{"signup huge password", anon, "POST", "/auth/signup", api.SignupRequest{Email: "x@example.com", Password: strings.Repeat("p", 300)}, 422, api.CodeValidation},
		{"verify empty", anon, "POST", "/auth/verify", api.VerifyRequest{}, 400, api.CodeInvalidToken},
		{"verify bogus", anon, "GET", "/auth/verify?token=bogus", nil, 400, api.CodeInvalidToken},
		{"login bad json", anon, "POST", "/auth/login", "[]", 400, api.CodeBadRequest},
		{"login empty", anon, "POST", "/auth/login", api.LoginRequest{}, 401, api.CodeInvalidLogin},
		{"me anonymous", anon, "GET", "/me", nil, 401, api.CodeUnauthenticated},
		{"vms anonymous", anon, "GET", "/vms", nil, 401, api.CodeUnauthenticated},
		{"create anonymous", anon, "POST", "/vms", api.CreateVMRequest{Name: "x", Template: "tiny"}, 401, api.CodeUnauthenticated},
		{"templates anonymous", anon, "GET", "/templates", nil, 401, api.CodeUnauthenticated},
		{"logout anonymous", anon, "POST", "/auth/logout", nil, 401, api.CodeUnauthenticated},
		{"create no name", u, "POST", "/vms", api.CreateVMRequest{Template: "tiny"}, 422, api.CodeValidation},
		{"create bad name", u, "POST", "/vms", api.CreateVMRequest{Name: "Web_1", Template: "tiny"}, 422, api.CodeValidation},
		{"create name too long", u, "POST", "/vms", api.CreateVMRequest{Name: long, Template: "tiny"}, 422, api.CodeValidation},
		{"create name leading dash", u, "POST", "/vms", api.CreateVMRequest{Name: "-web", Template: "tiny"}, 422, api.CodeValidation},
		{"create no template", u, "POST", "/vms", api.CreateVMRequest{Name: "web"}, 422, api.CodeValidation},
		{"create unknown template", u, "POST", "/vms", api.CreateVMRequest{Name: "web", Template: "nope"}, 422, api.CodeValidation},
		{"create template path", u, "POST", "/vms", api.CreateVMRequest{Name: "web", Template: "../../etc/passwd"}, 422, api.CodeValidation},
		{"create negative cpu", u, "POST", "/vms", api.CreateVMRequest{Name: "web", Template: "tiny", CPU: -1}, 422, api.CodeValidation},
		{"create too many cpus", u, "POST", "/vms", api.CreateVMRequest{Name: "web", Template: "tiny", CPU: 65}, 422, api.CodeValidation},
		{"create tiny memory", u, "POST", "/vms", api.CreateVMRequest{Name: "web", Template: "tiny", MemoryMB: 16}, 422, api.CodeValidation},
		{"create huge disk", u, "POST", "/vms", api.CreateVMRequest{Name: "web", Template: "tiny", DiskGB: 99999}, 422, api.CodeValidation},
		{"create huge userdata", u, "POST", "/vms", api.CreateVMRequest{Name: "web", Template: "tiny", UserData: strings.Repeat("u", 70000)}, 422, api.CodeValidation},
		{"create wrong type", u, "POST", "/vms", `{"name":"web","template":"tiny","cpu":"two"}`, 400, api.CodeBadRequest},
		{"create trailing data", u, "POST", "/vms", `{"name":"web","template":"tiny"} {}`, 400, api.CodeBadRequest},
		{"create body too large", u, "POST", "/vms", `{"name":"` + strings.Repeat("a", 2<<20) + `"}`, 413, "request_too_large"},
		{"get missing", u, "GET", "/vms/vm_01hzzzzzzzzzzzzzzzzzzzzzzz", nil, 404, api.CodeNotFound},
		{"get missing name", u, "GET", "/vms/nothing", nil, 404, api.CodeNotFound},
		{"start missing", u, "POST", "/vms/nothing/start", nil, 404, api.CodeNotFound},
		{"stop bad force", u, "POST", "/vms/nothing/stop?force=maybe", nil, 400, api.CodeBadRequest},
		{"delete missing", u, "DELETE", "/vms/nothing", nil, 404, api.CodeNotFound},
		{"list bad all", u, "GET", "/vms?all=perhaps", nil, 400, api.CodeBadRequest},
		{"users not admin", u, "GET", "/users", nil, 403, api.CodeForbidden},
		{"set quota not admin", u, "PUT", "/users/x/quota", api.Quota{VMs: 100}, 403, api.CodeForbidden},
		{"password wrong current", u, "POST", "/auth/password", api.ChangePasswordRequest{CurrentPassword: "nope nope", NewPassword: "long enough pw"}, 401, api.CodeInvalidLogin},
		{"password too short", u, "POST", "/auth/password", api.ChangePasswordRequest{CurrentPassword: "correct horse battery", NewPassword: "short"}, 422, api.CodeValidation},
		{"wrong method", u, "PATCH", "/vms", nil, 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, data := tt.as.do(tt.method, tt.path, tt.body, nil)
			wantError(t, st, data, tt.wantStatus, tt.wantCode)
		})
	}
	var me api.User
	u.mustDo("GET", "/me", nil, 200, &me)
	if me.Usage != (api.Quota{}) {
		t.Fatalf("refused requests changed usage: %+v", me.Usage)
	}
}

func TestAdminQuotaAndListAll(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		u := e.signup("user@example.com")
		if _, err := e.accounts.AddUser(t.Context(), "root@example.com", "correct horse battery", true); err != nil {
			t.Fatal(err)
		}
		adm := &user{e: e, client: e.srv.Client()}
		var lr api.LoginResponse
		adm.mustDo("POST", "/auth/login", api.LoginRequest{Email: "root@example.com", Password: "correct horse battery", Client: "cli"}, 200, &lr)
		adm.token = lr.Token

		var me api.User
		u.mustDo("GET", "/me", nil, 200, &me)
		var updated api.User
		adm.mustDo("PUT", "/users/"+me.ID+"/quota", api.Quota{VMs: 1, CPUs: 1, MemoryMB: 256, DiskGB: 1}, 200, &updated)
		if updated.Quota.VMs != 1 {
			t.Fatalf("quota not set: %+v", updated)
		}
		st, data := adm.do("PUT", "/users/"+me.ID+"/quota", api.Quota{VMs: -1}, nil)
		wantError(t, st, data, 422, api.CodeValidation)
		st, data = adm.do("PUT", "/users/usr_nobody/quota", api.Quota{VMs: 1}, nil)
		wantError(t, st, data, 404, api.CodeNotFound)

		u.mustDo("POST", "/vms", api.CreateVMRequest{Name: "one", Template: "tiny"}, 201, nil)
		st, data = u.do("POST", "/vms", api.CreateVMRequest{Name: "two", Template: "tiny"}, nil)
		wantError(t, st, data, 403, api.CodeQuotaExceeded)

		var all []api.VM
		adm.mustDo("GET", "/vms?all=true", nil, 200, &all)
		if len(all) != 1 || all[0].OwnerID != me.ID {
			t.Fatalf("admin list all = %+v", all)
		}
		var mine []api.VM
		adm.mustDo("GET", "/me/vms", nil, 200, &mine)
		if len(mine) != 0 {
			t.Fatalf("admin's own list = %+v", mine)
		}
		var users []api.User
		adm.mustDo("GET", "/users", nil, 200, &users)
		if len(users) != 2 {
			raw, _ := json.Marshal(users)
			t.Fatalf("users = %s", raw)
		}

		// Disabling ends the user's sessions now and announces them; enabling lets them log in again.
		var ended []string
		var mu sync.Mutex
		e.accounts.OnSessionEnd(func(ids ...string) { mu.Lock(); ended = append(ended, ids...); mu.Unlock() })
		st, data = u.do("POST", "/users/"+me.ID+"/disable", nil, nil)
		wantError(t, st, data, 403, api.CodeForbidden)
		var got api.User
		adm.mustDo("POST", "/users/user@example.com/disable", nil, 200, &got)
		if !got.Disabled || got.ID != me.ID {
			t.Fatalf("disabled user = %+v", got)
		}
		mu.Lock()
		if len(ended) != 1 {
			t.Fatalf("sessions announced as ended: %v, want the user's one", ended)
		}
		mu.Unlock()
		st, data = u.do("GET", "/me", nil, nil)
		wantError(t, st, data, 401, api.CodeUnauthenticated)
		login := api.LoginRequest{Email: "user@example.com", Password: "correct horse battery", Client: "cli"}
		st, data = adm.do("POST", "/auth/login", login, map[string]string{"Authorization": ""})
		wantError(t, st, data, 403, api.CodeForbidden)
		adm.mustDo("GET", "/users", nil, 200, &users)
		if !users[0].Disabled && !users[1].Disabled {
			t.Fatalf("GET /users shows no disabled user: %+v", users)
		}
		got = api.User{} // "disabled" is left out when false
		adm.mustDo("POST", "/users/"+me.ID+"/enable", nil, 200, &got)
		if got.Disabled {
			t.Fatalf("enabled user = %+v", got)
		}
		anon := &user{e: e, client: e.srv.Client()}
		anon.mustDo("POST", "/auth/login", login, 200, nil)
		st, data = adm.do("POST", "/users/usr_nobody/disable", nil, nil)
		wantError(t, st, data, 404, api.CodeNotFound)
	})
}
