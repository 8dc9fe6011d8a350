package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/server"
)

type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
		} `json:"schemas"`
	} `json:"components"`
}

// servedSpec fetches GET /api/v1/openapi.json without credentials and checks
// it is the committed file.
func servedSpec(t *testing.T) openAPIDoc {
	t.Helper()
	s, err := server.New(server.Config{PublicURL: "http://vmd.test"})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, api.BasePath+"/openapi.json", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET openapi.json: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	body, _ := io.ReadAll(rec.Body)
	file, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != string(file) {
		t.Fatal("served spec differs from pkg/server/openapi.json")
	}
	var doc openAPIDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("spec is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0.") {
		t.Fatalf("openapi = %q, want 3.0.x", doc.OpenAPI)
	}
	return doc
}

var echoParam = regexp.MustCompile(`:([A-Za-z_]+)`)

// TestOpenAPIMatchesRoutes walks echo's registered /api/v1 routes: each has
// its path and method in the spec, and the spec names no other.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	doc := servedSpec(t)
	s, err := server.New(server.Config{PublicURL: "http://vmd.test"})
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{}
	for _, r := range s.Echo().Routes() {
		if !strings.HasPrefix(r.Path, api.BasePath+"/") || r.Method == "echo_route_any" {
			continue
		}
		p := echoParam.ReplaceAllString(strings.TrimPrefix(r.Path, api.BasePath), "{$1}")
		routes[strings.ToLower(r.Method)+" "+p] = true
	}
	if len(routes) < 10 {
		t.Fatalf("only %d API routes found: %v", len(routes), routes)
	}
	spec := map[string]bool{}
	for p, item := range doc.Paths {
		for m := range item {
			switch m {
			case "get", "put", "post", "delete", "patch", "head", "options":
				spec[m+" "+p] = true
			}
		}
	}
	var missing, extra []string
	for k := range routes {
		if !spec[k] {
			missing = append(missing, k)
		}
	}
	for k := range spec {
		if !routes[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes missing from pkg/server/openapi.json: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("openapi.json lists routes vmd does not serve: %v", extra)
	}
}

// TestOpenAPISchemas checks each schema's properties against the JSON
// fields of its pkg/api type, so a new field cannot be left out of the spec.
func TestOpenAPISchemas(t *testing.T) {
	t.Parallel()
	doc := servedSpec(t)
	tests := []struct {
		schema string
		typ    any
	}{
		{"ErrorBody", api.ErrorBody{}},
		{"ErrorDetail", api.ErrorDetail{}},
		{"Quota", api.Quota{}},
		{"User", api.User{}},
		{"SignupRequest", api.SignupRequest{}},
		{"SignupResponse", api.SignupResponse{}},
		{"VerifyRequest", api.VerifyRequest{}},
		{"LoginRequest", api.LoginRequest{}},
		{"LoginResponse", api.LoginResponse{}},
		{"ChangePasswordRequest", api.ChangePasswordRequest{}},
		{"EmailRequest", api.EmailRequest{}},
		{"ResetPasswordRequest", api.ResetPasswordRequest{}},
		{"DeleteAccountRequest", api.DeleteAccountRequest{}},
		{"StatusResponse", api.StatusResponse{}},
		{"CreateVMRequest", api.CreateVMRequest{}},
		{"VM", api.VM{}},
		{"VMEvent", api.VMEvent{}},
		{"Change", api.Change{}},
		{"Template", api.Template{}},
		{"ConsoleResponse", api.ConsoleResponse{}},
		{"ConsoleSession", api.ConsoleSession{}},
		{"ShareLink", api.ShareLink{}},
		{"CreateShareLinkRequest", api.CreateShareLinkRequest{}},
		{"ShareLinkTokenRequest", api.ShareLinkTokenRequest{}},
		{"Version", api.Version{}},
		{"ExtendRequest", api.ExtendRequest{}},
		{"Snapshot", api.Snapshot{}},
		{"CreateSnapshotRequest", api.CreateSnapshotRequest{}},
	}
	for _, tt := range tests {
		t.Run(tt.schema, func(t *testing.T) {
			sc, ok := doc.Components.Schemas[tt.schema]
			if !ok {
				t.Fatalf("no schema %s", tt.schema)
			}
			fields, required := jsonFields(reflect.TypeOf(tt.typ))
			for name := range fields {
				if _, ok := sc.Properties[name]; !ok {
					t.Errorf("field %q missing from the schema", name)
				}
			}
			for name := range sc.Properties {
				if !fields[name] {
					t.Errorf("schema property %q is no field of the Go type", name)
				}
			}
			req := map[string]bool{}
			for _, r := range sc.Required {
				req[r] = true
			}
			for _, r := range required {
				if !req[r] && !strings.HasSuffix(tt.schema, "Request") {
					t.Errorf("field %q is always sent but not required in the schema", r)
				}
			}
		})
	}
}

// jsonFields returns a struct's JSON names and those sent even when empty.
func jsonFields(t reflect.Type) (map[string]bool, []string) {
	out := map[string]bool{}
	var always []string
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || name == "" {
			continue
		}
		out[name] = true
		if !strings.Contains(opts, "omitempty") {
			always = append(always, name)
		}
	}
	return out, always
}
