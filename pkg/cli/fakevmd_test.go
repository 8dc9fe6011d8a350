package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
)

// fakeVMD speaks the API's shapes from memory: enough of vmd for the
// commands' run tests. The lead's e2e tests cover the real server.
type fakeVMD struct {
	t   *testing.T
	srv *httptest.Server
	// files are the guest files of vmctl cp, by "vm:path".
	files map[string][]byte

	mu sync.Mutex
	// token that authenticates; "" disables auth checks
	token    string
	vms      map[string]*api.VM // by name
	order    []string
	quotaVMs int
	// pollsToRunning is how many GETs a new or started VM needs to reach running
	pollsToRunning int
	// pollsToGone is how many GETs a deleted VM stays in state deleting
	pollsToGone int
	progress    map[string]int
	// changes is the feed of GET /events; a change's ID is its index + 1
	changes []api.Change
	// noEvents answers GET /events with 404, as a vmd from before the feed
	noEvents bool
	// templateList, when set, is what GET /templates answers
	templateList []api.Template
	requests     []string
	lastBody     map[string]any
	lastAuth     string
	userAgent    string
	// onExec, when set, sees each exec request
	onExec func(api.ExecRequest)
}

var fakeNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newFakeVMD(t *testing.T) *fakeVMD {
	t.Helper()
	f := &fakeVMD{t: t, token: "tok", vms: map[string]*api.VM{}, quotaVMs: 5, progress: map[string]int{}, files: map[string][]byte{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/auth/signup", f.signup)
	mux.HandleFunc("POST /api/v1/auth/verify", f.verify)
	mux.HandleFunc("POST /api/v1/auth/login", f.login)
	mux.HandleFunc("POST /api/v1/auth/logout", f.auth(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	mux.HandleFunc("GET /api/v1/me", f.auth(f.me))
	mux.HandleFunc("GET /api/v1/vms", f.auth(f.list))
	mux.HandleFunc("POST /api/v1/vms", f.auth(f.create))
	mux.HandleFunc("GET /api/v1/vms/{id}", f.auth(f.get))
	mux.HandleFunc("DELETE /api/v1/vms/{id}", f.auth(f.del))
	mux.HandleFunc("POST /api/v1/vms/{id}/start", f.auth(f.power(api.StateStarting)))
	mux.HandleFunc("POST /api/v1/vms/{id}/stop", f.auth(f.power(api.StateStopped)))
	mux.HandleFunc("GET /api/v1/templates", f.auth(f.templates))
	mux.HandleFunc("POST /api/v1/vms/{id}/pause", f.auth(f.power(api.StatePaused)))
	mux.HandleFunc("POST /api/v1/vms/{id}/resume", f.auth(f.power(api.StateRunning)))
	mux.HandleFunc("POST /api/v1/vms/{id}/extend", f.auth(f.extend))
	mux.HandleFunc("GET /api/v1/events", f.auth(f.events))
	mux.HandleFunc("POST /api/v1/vms/{id}/exec", f.auth(f.exec))
	mux.HandleFunc("PUT /api/v1/vms/{id}/files", f.auth(f.putFile))
	mux.HandleFunc("GET /api/v1/vms/{id}/files", f.auth(f.getFile))
	mux.HandleFunc("GET /api/v1/version", func(w http.ResponseWriter, r *http.Request) {
		writeJSONResp(w, 200, api.Version{Version: "0.9.0", Commit: "abc123"})
	})
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
		f.lastAuth = r.Header.Get("Authorization")
		f.userAgent = r.Header.Get("User-Agent")
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeVMD) URL() string { return f.srv.URL }

func (f *fakeVMD) addVM(vm api.VM) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vms[vm.Name] = &vm
	f.order = append(f.order, vm.Name)
}

// record appends vm's current state to the change feed; f.mu is held.
func (f *fakeVMD) record(vm *api.VM, st api.State) {
	f.changes = append(f.changes, api.Change{ID: int64(len(f.changes) + 1), VMID: vm.ID, VMName: vm.Name,
		State: st, DesiredState: vm.DesiredState, Message: vm.Message, Time: fakeNow})
}

// step moves a VM one poll along its way (to running, or gone), as a GET
// or a tick of an open event stream does; f.mu is held. It reports
// whether the VM is gone.
func (f *fakeVMD) step(vm *api.VM) bool {
	switch vm.State {
	case api.StateProvisioning, api.StateStarting:
		f.progress[vm.Name]++
		if f.progress[vm.Name] >= f.pollsToRunning {
			vm.State = api.StateRunning
			f.record(vm, vm.State)
		}
	case api.StateDeleting:
		f.progress[vm.Name]++
		if f.progress[vm.Name] >= f.pollsToGone {
			delete(f.vms, vm.Name)
			f.record(vm, api.StateDeleted)
			return true
		}
	}
	return false
}

// events streams the feed, moving every VM along each few milliseconds.
func (f *fakeVMD) events(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	after := int64(len(f.changes))
	noEvents := f.noEvents
	f.mu.Unlock()
	if noEvents {
		writeErr(w, 404, api.CodeNotFound, "no route")
		return
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		after, _ = strconv.ParseInt(v, 10, 64)
	} else if v := r.URL.Query().Get("after"); v != "" {
		after, _ = strconv.ParseInt(v, 10, 64)
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	fmt.Fprintf(w, "id: %d\n\n", after)
	w.(http.Flusher).Flush()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
		f.mu.Lock()
		for _, n := range f.order {
			if vm := f.vms[n]; vm != nil {
				f.step(vm)
			}
		}
		pending := append([]api.Change(nil), f.changes[min(int(after), len(f.changes)):]...)
		f.mu.Unlock()
		for _, c := range pending {
			b, _ := json.Marshal(c)
			fmt.Fprintf(w, "id: %d\nevent: vm\ndata: %s\n\n", c.ID, b)
			after = c.ID
		}
		w.(http.Flusher).Flush()
	}
}

func writeJSONResp(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSONResp(w, status, api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: msg, RequestID: "req-1"}})
}

func (f *fakeVMD) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
			writeErr(w, 401, api.CodeUnauthenticated, "log in first")
			return
		}
		h(w, r)
	}
}

func (f *fakeVMD) decode(r *http.Request, v any) {
	raw := map[string]any{}
	dec := json.NewDecoder(r.Body)
	var buf json.RawMessage
	if err := dec.Decode(&buf); err != nil {
		f.t.Errorf("decode body of %s: %v", r.URL.Path, err)
		return
	}
	_ = json.Unmarshal(buf, &raw)
	_ = json.Unmarshal(buf, v)
	f.mu.Lock()
	f.lastBody = raw
	f.mu.Unlock()
}

func (f *fakeVMD) signup(w http.ResponseWriter, r *http.Request) {
	var req api.SignupRequest
	f.decode(r, &req)
	if req.Email == "taken@example.com" {
		writeErr(w, 409, api.CodeConflict, "e-mail already registered")
		return
	}
	writeJSONResp(w, 201, api.SignupResponse{Email: req.Email, Message: "verification e-mail sent"})
}

func (f *fakeVMD) verify(w http.ResponseWriter, r *http.Request) {
	var req api.VerifyRequest
	f.decode(r, &req)
	if req.Token != "good" {
		writeErr(w, 404, api.CodeNotFound, "unknown or expired token")
		return
	}
	writeJSONResp(w, 200, map[string]string{"status": "verified"})
}

func (f *fakeVMD) login(w http.ResponseWriter, r *http.Request) {
	var req api.LoginRequest
	f.decode(r, &req)
	if req.Password != "hunter2" {
		writeErr(w, 401, api.CodeInvalidLogin, "wrong e-mail or password")
		return
	}
	writeJSONResp(w, 200, api.LoginResponse{Token: f.token, ExpiresAt: fakeNow.Add(24 * time.Hour)})
}

func (f *fakeVMD) me(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	n := len(f.vms)
	f.mu.Unlock()
	writeJSONResp(w, 200, api.User{
		ID: "usr_1", Email: "me@example.com", Verified: true,
		Quota:     api.Quota{VMs: f.quotaVMs, CPUs: 8, MemoryMB: 8192, DiskGB: 100},
		Usage:     api.Quota{VMs: n, CPUs: n, MemoryMB: 256 * n, DiskGB: n},
		CreatedAt: fakeNow.Add(-72 * time.Hour),
	})
}

func (f *fakeVMD) list(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []api.VM{}
	for _, n := range f.order {
		if vm, ok := f.vms[n]; ok {
			c := *vm
			c.Events = nil
			out = append(out, c)
		}
	}
	writeJSONResp(w, 200, out)
}

func (f *fakeVMD) find(id string) *api.VM {
	if vm, ok := f.vms[id]; ok {
		return vm
	}
	for _, vm := range f.vms {
		if vm.ID == id {
			return vm
		}
	}
	return nil
}

func (f *fakeVMD) create(w http.ResponseWriter, r *http.Request) {
	var req api.CreateVMRequest
	f.decode(r, &req)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case req.Name == "" || strings.ContainsAny(req.Name, "/ "):
		writeErr(w, 422, api.CodeValidation, "name is invalid")
		return
	case req.Template != "tiny":
		writeErr(w, 404, api.CodeNotFound, "template "+req.Template+" not found")
		return
	case f.vms[req.Name] != nil:
		writeErr(w, 409, api.CodeConflict, "a vm named "+req.Name+" exists")
		return
	case len(f.vms) >= f.quotaVMs:
		writeErr(w, 403, api.CodeQuotaExceeded, "quota of vms reached")
		return
	}
	vm := &api.VM{
		ID: "vm_" + strings.ToUpper(req.Name), Name: req.Name, OwnerID: "usr_1", Template: req.Template,
		CPU: max(req.CPU, 1), MemoryMB: max(req.MemoryMB, 256), DiskGB: max(req.DiskGB, 1),
		State: api.StateProvisioning, DesiredState: api.DesiredRunning, CreatedAt: fakeNow, UpdatedAt: fakeNow,
		IdleStop: req.IdleStop,
	}
	if d, err := time.ParseDuration(req.TTL); err == nil {
		at := fakeNow.Add(d)
		vm.ExpiresAt = &at
	}
	f.vms[vm.Name] = vm
	f.order = append(f.order, vm.Name)
	f.record(vm, vm.State)
	writeJSONResp(w, 201, vm)
}

func (f *fakeVMD) get(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	vm := f.find(r.PathValue("id"))
	if vm == nil {
		writeErr(w, 404, api.CodeNotFound, "vm "+r.PathValue("id")+" not found")
		return
	}
	if f.step(vm) {
		writeErr(w, 404, api.CodeNotFound, "vm not found")
		return
	}
	writeJSONResp(w, 200, vm)
}

func (f *fakeVMD) del(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	vm := f.find(r.PathValue("id"))
	if vm == nil {
		writeErr(w, 404, api.CodeNotFound, "vm not found")
		return
	}
	vm.State, vm.DesiredState = api.StateDeleting, api.DesiredDeleted
	f.progress[vm.Name] = 0
	f.record(vm, vm.State)
	writeJSONResp(w, 202, vm)
}

func (f *fakeVMD) power(to api.State) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		vm := f.find(r.PathValue("id"))
		if vm == nil {
			writeErr(w, 404, api.CodeNotFound, "vm not found")
			return
		}
		vm.State = to
		f.progress[vm.Name] = 0
		f.record(vm, vm.State)
		writeJSONResp(w, 202, vm)
	}
}

func (f *fakeVMD) templates(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	list := f.templateList
	f.mu.Unlock()
	if list != nil {
		writeJSONResp(w, 200, list)
		return
	}
	writeJSONResp(w, 200, []api.Template{{
		Name: "tiny", SizeBytes: 50 * 1024 * 1024,
		SHA256:    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		CreatedAt: fakeNow.Add(-48 * time.Hour),
	}})
}

func (f *fakeVMD) requestLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// extend sets expires_at to fakeNow+ttl, as vmd does with its clock.
func (f *fakeVMD) extend(w http.ResponseWriter, r *http.Request) {
	var req api.ExtendRequest
	f.decode(r, &req)
	f.mu.Lock()
	defer f.mu.Unlock()
	vm := f.find(r.PathValue("id"))
	d, err := time.ParseDuration(req.TTL)
	switch {
	case vm == nil:
		writeErr(w, 404, api.CodeNotFound, "vm not found")
		return
	case err != nil || d < time.Minute:
		writeErr(w, 422, api.CodeValidation, "ttl: must be at least 1m0s")
		return
	}
	at := fakeNow.Add(d)
	vm.ExpiresAt = &at
	writeJSONResp(w, 200, vm)
}
