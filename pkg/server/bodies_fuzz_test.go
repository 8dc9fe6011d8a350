package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// FuzzJSONBodies sends each body to every route that decodes one, through
// the whole stack (authentication, decode, services, the error mapper, on
// SQLite): no body may cause a 5xx, and every refusal is the contract's
// error shape with a request id. Its seeds (testdata/fuzz/FuzzJSONBodies)
// run with every go test; go test -fuzz=FuzzJSONBodies ./pkg/server
// explores further.
func FuzzJSONBodies(f *testing.F) {
	for _, s := range []string{
		`{"email":"fuzz@example.com","password":"correct horse battery","client":"cli"}`,
		`{"email":"new@example.com","password":"long enough pw"}`,
		`{"name":"web","template":"tiny","cpu":1,"memory_mb":128,"disk_gb":1}`,
		`{"name":"web","template":"tiny","cpu":65}`, `{"name":"Web_1","template":"../etc"}`,
		`{"current_password":"nope nope","new_password":"long enough pw"}`,
		`{"token":"bogus"}`, `{"name":"web"}}`, `{}`, `[]`, `"x"`, `{"cpu":-1}`, `{"memory_mb":9223372036854775807}`,
	} {
		f.Add([]byte(s))
	}
	e := buildEnv(f, storetest.Backends()[0], nil)
	if _, err := e.accounts.AddUser(context.Background(), "fuzz@example.com", "correct horse battery", false); err != nil {
		f.Fatal(err)
	}
	post := func(tb testing.TB, method, path, token string, body []byte) (int, http.Header, []byte) {
		req, _ := http.NewRequest(method, e.srv.URL+api.BasePath+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := e.srv.Client().Do(req)
		if err != nil {
			tb.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		data, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header, data
	}
	st, _, data := post(f, "POST", "/auth/login", "",
		[]byte(`{"email":"fuzz@example.com","password":"correct horse battery","client":"cli"}`))
	var lr api.LoginResponse
	if st != 200 || json.Unmarshal(data, &lr) != nil {
		f.Fatalf("login: %d %s", st, data)
	}
	routes := []struct {
		method, path string
		user         bool
	}{
		{"POST", "/auth/signup", false},
		{"POST", "/auth/verify", false},
		{"POST", "/auth/login", false},
		{"POST", "/vms", true},
		{"POST", "/auth/password", true},
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, r := range routes {
			token := ""
			if r.user {
				token = lr.Token
			}
			st, hdr, data := post(t, r.method, r.path, token, body)
			if st >= 500 {
				t.Fatalf("%s %s %q = %d: %s", r.method, r.path, body, st, data)
			}
			if st < 300 {
				continue
			}
			var eb api.ErrorBody
			if json.Unmarshal(data, &eb) != nil || eb.Error.Code == "" || eb.Error.Message == "" ||
				eb.Error.RequestID == "" || eb.Error.RequestID != hdr.Get("X-Request-Id") {
				t.Fatalf("%s %s %q = %d, not the error shape: %s", r.method, r.path, body, st, data)
			}
		}
	})
}
