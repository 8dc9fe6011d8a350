package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
)

var fakeExpiry = fakeNow.Add(2 * time.Hour) // 30 min after the tests' now

func seedVMs(f *fakeVMD) {
	f.addVM(api.VM{ID: "vm_01WEB", Name: "web", OwnerID: "usr_1", Template: "tiny", CPU: 1, MemoryMB: 256, DiskGB: 1,
		State: api.StateRunning, DesiredState: api.DesiredRunning, Node: "node-a", CreatedAt: fakeNow, UpdatedAt: fakeNow,
		Ready: true, Addresses: []string{"10.0.2.15/24", "fec0::5054:ff:fe12:3456/64"},
		Events: []api.VMEvent{{Time: fakeNow, State: api.StateRunning, Message: "booted"}}, ExpiresAt: &fakeExpiry})
	f.addVM(api.VM{ID: "vm_02DATABASE", Name: "database", OwnerID: "usr_1", Template: "tiny", CPU: 4, MemoryMB: 4096, DiskGB: 20,
		State: api.StateError, DesiredState: api.DesiredRunning, Message: "qemu exited: 1", CreatedAt: fakeNow.Add(-50 * time.Hour), UpdatedAt: fakeNow})
}

func TestLoginPasswordStdin(t *testing.T) {
	e := newTestEnv(t)
	e.in.WriteString("hunter2\n")
	opts := &LoginOptions{credentialOptions(e.f)}
	opts.Server, opts.Email, opts.PasswordStdin = e.fake.URL(), "me@example.com", true
	if err := loginRun(bg, opts); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(e.fake.URL(), "http://")
	if cfg.CurrentContext != name || cfg.Contexts[name] == nil || cfg.Contexts[name].Token != "tok" || cfg.Contexts[name].Server != e.fake.URL() {
		t.Fatalf("config = %+v, ctx %+v", cfg, cfg.Contexts[name])
	}
	st, err := os.Stat(e.cfgPath)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config mode = %v, %v", st.Mode(), err)
	}
	if e.fake.lastBody["password"] != "hunter2" || e.fake.lastBody["email"] != "me@example.com" {
		t.Errorf("login body = %v", e.fake.lastBody)
	}
	if e.out.Len() != 0 || !strings.Contains(e.errOut.String(), "Logged in") {
		t.Errorf("stdout %q stderr %q", e.out, e.errOut)
	}
}

func TestLoginFailures(t *testing.T) {
	tests := []struct {
		name     string
		stdin    string
		tty      bool
		email    string
		pwStdin  bool
		context  string
		wantCode int
	}{
		{"wrong password", "nope\n", false, "me@example.com", true, "", ExitAuth},
		{"no email off tty", "", false, "", false, "", ExitUsage},
		{"no password source off tty", "", false, "me@example.com", false, "", ExitUsage},
		{"empty stdin", "", false, "me@example.com", true, "", ExitUsage},
		{"stdin without email", "hunter2\n", true, "", true, "", ExitUsage},
		{"prompts on tty", "me@example.com\nhunter2\n", true, "", false, "work", ExitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			if tt.tty {
				e.tty()
			}
			e.in.WriteString(tt.stdin)
			opts := &LoginOptions{credentialOptions(e.f)}
			opts.Server, opts.Email, opts.PasswordStdin, opts.ContextName = e.fake.URL(), tt.email, tt.pwStdin, tt.context
			err := loginRun(bg, opts)
			if got := ExitCode(err); got != tt.wantCode {
				t.Fatalf("exit %d (%v), want %d", got, err, tt.wantCode)
			}
			if tt.context != "" {
				cfg, _ := LoadConfig(e.cfgPath)
				if cfg.CurrentContext != tt.context || cfg.Contexts[tt.context].Token != "tok" {
					t.Errorf("config = %+v", cfg)
				}
			}
		})
	}
}

func TestSignupVerifyLogout(t *testing.T) {
	e := newTestEnv(t)
	e.in.WriteString("pw\n")
	so := &SignupOptions{credentialOptions(e.f)}
	so.Server, so.Email, so.PasswordStdin = e.fake.URL(), "new@example.com", true
	if err := signupRun(bg, so); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.errOut.String(), "verification e-mail was sent") {
		t.Errorf("stderr = %q", e.errOut)
	}

	so.Email = "taken@example.com"
	e.in.WriteString("pw\n")
	if code := ExitCode(signupRun(bg, so)); code != ExitQuotaOrClash {
		t.Errorf("signup of taken e-mail exit %d", code)
	}

	vo := &VerifyOptions{IO: e.f.IOStreams, Target: e.f.Target, NewClient: so.NewClient, Token: "good"}
	if err := verifyRun(bg, vo); err != nil {
		t.Fatal(err)
	}
	vo.Token = "bad"
	if code := ExitCode(verifyRun(bg, vo)); code != ExitNotFound {
		t.Errorf("bad verify token exit %d", code)
	}
	// The token on stdin (vmctl verify - / --token-stdin), surrounding blanks trimmed.
	e.in.WriteString("  good \n")
	vo.Token, vo.TokenStdin = "", true
	if err := verifyRun(bg, vo); err != nil {
		t.Fatalf("token on stdin: %v", err)
	}
	if code := ExitCode(verifyRun(bg, vo)); code != ExitUsage {
		t.Errorf("--token-stdin with empty stdin exit %d", code)
	}
	vo.TokenStdin = false

	// logout clears the stored token but keeps the context
	cfg := &Config{CurrentContext: "here", Contexts: map[string]*Context{"here": {Server: e.fake.URL(), Token: "tok"}}}
	if err := cfg.Save(e.cfgPath); err != nil {
		t.Fatal(err)
	}
	e.token = ""
	e.f.Target = func() (Target, error) { c, _ := LoadConfig(e.cfgPath); return resolveTarget(c, "", "", "") }
	e.f.Client = func() (*client.Client, error) {
		t, _ := e.f.Target()
		return client.New(t.Server, t.Token), nil
	}
	lo := &LogoutOptions{IO: e.f.IOStreams, Client: e.f.Client, Target: e.f.Target, Config: e.f.Config, ConfigPath: e.f.ConfigPath}
	if err := logoutRun(bg, lo); err != nil {
		t.Fatal(err)
	}
	got, _ := LoadConfig(e.cfgPath)
	if got.Contexts["here"] == nil || got.Contexts["here"].Token != "" || got.CurrentContext != "here" {
		t.Errorf("config after logout = %+v", got.Contexts["here"])
	}
	if code := ExitCode(logoutRun(bg, lo)); code != ExitAuth {
		t.Errorf("second logout exit %d, want %d", code, ExitAuth)
	}
}

// TestOutputs checks every -o format of list, get, me and templates against
// golden files, on and off a TTY.
func TestOutputs(t *testing.T) {
	for _, tty := range []bool{false, true} {
		for _, format := range outputFormats {
			for _, cmd := range []string{"list", "get", "me", "templates"} {
				if tty && (format == formatJSON || format == formatYAML || format == formatName) {
					continue // the same on a TTY
				}
				name := cmd + "-" + format
				if tty {
					name += "-tty"
				}
				t.Run(name, func(t *testing.T) {
					e := newTestEnv(t)
					seedVMs(e.fake)
					if tty {
						e.f.IOStreams.OutTTY = true
					}
					var err error
					switch cmd {
					case "list":
						err = listRun(bg, &ListOptions{IO: e.f.IOStreams, Client: e.f.Client, Now: e.f.Now, Output: format})
					case "get":
						err = getRun(bg, &GetOptions{IO: e.f.IOStreams, Client: e.f.Client, Now: e.f.Now, Name: "web", Output: format})
					case "me":
						err = meRun(bg, &MeOptions{IO: e.f.IOStreams, Client: e.f.Client, Now: e.f.Now, Output: format})
					case "templates":
						err = templatesRun(bg, &TemplatesOptions{IO: e.f.IOStreams, Client: e.f.Client, Now: e.f.Now, Output: format})
					}
					if err != nil {
						t.Fatal(err)
					}
					golden(t, name+".golden", e.out.Bytes())
				})
			}
		}
	}
}

func TestColourOnlyWhenAllowed(t *testing.T) {
	for _, c := range []struct {
		tty, color, want bool
	}{{true, true, true}, {true, false, false}, {false, true, false}} {
		e := newTestEnv(t)
		seedVMs(e.fake)
		e.f.IOStreams.OutTTY, e.f.IOStreams.Color = c.tty, c.color
		if err := listRun(bg, &ListOptions{IO: e.f.IOStreams, Client: e.f.Client, Now: e.f.Now, Output: "table"}); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(e.out.String(), "\x1b["); got != c.want {
			t.Errorf("tty=%v color=%v: escape codes %v, want %v:\n%s", c.tty, c.color, got, c.want, e.out)
		}
	}
}

func TestJSONIsTheAPIObject(t *testing.T) {
	e := newTestEnv(t)
	seedVMs(e.fake)
	if err := getRun(bg, &GetOptions{IO: e.f.IOStreams, Client: e.f.Client, Now: e.f.Now, Name: "web", Output: "json"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"memory_mb": 256`, `"desired_state": "running"`, `"events": [`, `"created_at": "2025-06-01T12:00:00Z"`} {
		if !strings.Contains(e.out.String(), want) {
			t.Errorf("json lacks %s:\n%s", want, e.out)
		}
	}
}

func TestListEmpty(t *testing.T) {
	e := newTestEnv(t)
	if err := listRun(bg, &ListOptions{IO: e.f.IOStreams, Client: e.f.Client, Now: e.f.Now, Output: "json"}); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(e.out.String()) != "[]" {
		t.Errorf("json of no vms = %q, want []", e.out)
	}
}

func TestListAllSendsQuery(t *testing.T) {
	e := newTestEnv(t)
	if err := listRun(bg, &ListOptions{IO: e.f.IOStreams, Client: e.f.Client, Now: e.f.Now, All: true, Output: "name"}); err != nil {
		t.Fatal(err)
	}
	if log := e.fake.requestLog(); log[len(log)-1] != "GET /api/v1/vms?all=true" {
		t.Errorf("requests %v", log)
	}
}

func TestCreate(t *testing.T) {
	e := newTestEnv(t)
	ud := filepath.Join(t.TempDir(), "user-data")
	if err := os.WriteFile(ud, []byte("#cloud-config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := &CreateOptions{IO: e.f.IOStreams, Client: e.f.Client, Now: e.f.Now, Name: "api", Template: "tiny",
		CPU: 2, MemoryMB: 512, UserDataFile: ud, Timeout: time.Minute, Interval: time.Millisecond, Output: "name"}
	if err := createRun(bg, opts); err != nil {
		t.Fatal(err)
	}
	if e.out.String() != "api\n" {
		t.Errorf("stdout = %q", e.out)
	}
	b := e.fake.lastBody
	if b["name"] != "api" || b["template"] != "tiny" || b["cpu"] != 2.0 || b["memory_mb"] != 512.0 || b["userdata"] != "#cloud-config\n" {
		t.Errorf("body = %v", b)
	}
	if _, ok := b["disk_gb"]; ok {
		t.Errorf("disk_gb sent though not given: %v", b)
	}
	for _, tt := range []struct {
		name, template string
		want           int
	}{{"api", "tiny", ExitQuotaOrClash}, {"other", "nope", ExitNotFound}, {"bad name", "tiny", ExitError}} {
		opts.Name, opts.Template = tt.name, tt.template
		if got := ExitCode(createRun(bg, opts)); got != tt.want {
			t.Errorf("create %s/%s exit %d, want %d", tt.name, tt.template, got, tt.want)
		}
	}
	e.fake.quotaVMs = 1
	opts.Name, opts.Template = "third", "tiny"
	if got := ExitCode(createRun(bg, opts)); got != ExitQuotaOrClash {
		t.Errorf("over quota exit %d", got)
	}
}

func TestCreateWait(t *testing.T) {
	e := newTestEnv(t)
	e.fake.pollsToRunning = 3
	opts := &CreateOptions{IO: e.f.IOStreams, Client: e.f.Client, Now: e.f.Now, Name: "w", Template: "tiny",
		Wait: true, Timeout: 5 * time.Second, Interval: time.Millisecond, Output: "json"}
	if err := createRun(bg, opts); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.out.String(), `"state": "running"`) {
		t.Errorf("create --wait printed %s", e.out)
	}
	// It follows the change feed instead of polling: one GET for the
	// state before the feed, one for the full record at the end.
	gets, feeds := 0, 0
	for _, r := range e.fake.requestLog() {
		switch r {
		case "GET /api/v1/vms/vm_W":
			gets++
		case "GET /api/v1/events":
			feeds++
		}
	}
	if gets > 2 || feeds != 1 {
		t.Errorf("%d GETs and %d feeds, want at most 2 and 1: %v", gets, feeds, e.fake.requestLog())
	}

	e2 := newTestEnv(t)
	e2.fake.pollsToRunning = 1 << 30
	opts = &CreateOptions{IO: e2.f.IOStreams, Client: e2.f.Client, Now: e2.f.Now, Name: "slow", Template: "tiny",
		Wait: true, Timeout: 50 * time.Millisecond, Interval: 5 * time.Millisecond, Output: "table"}
	err := createRun(bg, opts)
	if ExitCode(err) != ExitTimeout || !strings.Contains(err.Error(), "last state provisioning") {
		t.Fatalf("err = %v, want timeout", err)
	}
}

func TestWait(t *testing.T) {
	tests := []struct {
		name     string
		vm       string
		cond     waitCondition
		setup    func(*fakeVMD)
		timeout  time.Duration
		wantCode int
	}{
		{"already running", "web", waitCondition{state: api.StateRunning}, nil, time.Second, ExitOK},
		{"reaches running", "web", waitCondition{state: api.StateRunning}, func(f *fakeVMD) {
			f.vms["web"].State, f.pollsToRunning = api.StateStarting, 4
		}, 5 * time.Second, ExitOK},
		{"times out", "web", waitCondition{state: api.StateStopped}, nil, 30 * time.Millisecond, ExitTimeout},
		{"missing vm", "ghost", waitCondition{state: api.StateRunning}, nil, time.Second, ExitNotFound},
		{"error state fails fast", "database", waitCondition{state: api.StateRunning}, nil, 10 * time.Second, ExitError},
		{"waits for error", "database", waitCondition{state: api.StateError}, nil, time.Second, ExitOK},
		{"delete of missing vm", "ghost", waitCondition{deleted: true}, nil, time.Second, ExitOK},
		{"delete completes", "web", waitCondition{deleted: true}, func(f *fakeVMD) {
			f.vms["web"].State, f.pollsToGone = api.StateDeleting, 3
		}, 5 * time.Second, ExitOK},
		{"delete times out", "web", waitCondition{deleted: true}, nil, 30 * time.Millisecond, ExitTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			seedVMs(e.fake)
			if tt.setup != nil {
				tt.setup(e.fake)
			}
			start := time.Now()
			err := waitRun(bg, &WaitOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: tt.vm, For: tt.cond, Timeout: tt.timeout, Interval: 2 * time.Millisecond})
			if got := ExitCode(err); got != tt.wantCode {
				t.Fatalf("exit %d (%v), want %d", got, err, tt.wantCode)
			}
			if time.Since(start) > tt.timeout+2*time.Second {
				t.Errorf("took %v with timeout %v", time.Since(start), tt.timeout)
			}
		})
	}
}

func TestWaitRetriesServerErrors(t *testing.T) {
	e := newTestEnv(t)
	seedVMs(e.fake)
	// a server that is down for the whole wait ends in a timeout, not an error
	e.server = "http://127.0.0.1:1"
	err := waitRun(bg, &WaitOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: "web", For: waitCondition{state: api.StateRunning}, Timeout: 50 * time.Millisecond, Interval: 5 * time.Millisecond})
	var te *TimeoutError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "last error") {
		t.Fatalf("err = %v", err)
	}
}

func TestPowerAndDelete(t *testing.T) {
	e := newTestEnv(t)
	seedVMs(e.fake)
	if err := stopRun(bg, &PowerOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: "web", Force: true}); err != nil {
		t.Fatal(err)
	}
	if err := startRun(bg, &PowerOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: "vm_01WEB"}); err != nil {
		t.Fatal(err)
	}
	if code := ExitCode(startRun(bg, &PowerOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: "ghost"})); code != ExitNotFound {
		t.Errorf("start ghost exit %d", code)
	}
	log := e.fake.requestLog()
	if log[0] != "POST /api/v1/vms/web/stop?force=true" || log[1] != "POST /api/v1/vms/vm_01WEB/start" {
		t.Errorf("requests %v", log)
	}
	if e.out.Len() != 0 || !strings.Contains(e.errOut.String(), "vm web: stop requested (state stopped)") {
		t.Errorf("stdout %q stderr %q", e.out, e.errOut)
	}

	// on a TTY without --yes, "n" keeps the VM and "y" deletes it
	e.tty()
	e.in.WriteString("n\ny\n")
	opts := &DeleteOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: "web"}
	if err := deleteRun(bg, opts); err == nil || ExitCode(err) != ExitError {
		t.Fatalf("declined delete: %v", err)
	}
	if err := deleteRun(bg, opts); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.vms["web"].State; got != api.StateDeleting {
		t.Errorf("state after delete = %s", got)
	}
	if !strings.Contains(e.errOut.String(), "Delete vm web and its disk? [y/N]") {
		t.Errorf("no prompt in %q", e.errOut)
	}
}

func TestNotLoggedIn(t *testing.T) {
	e := newTestEnv(t)
	e.token = ""
	err := listRun(bg, &ListOptions{IO: e.f.IOStreams, Client: e.f.Client, Now: e.f.Now, Output: "table"})
	if ExitCode(err) != ExitAuth || len(e.fake.requestLog()) != 0 {
		t.Fatalf("err = %v, requests %v", err, e.fake.requestLog())
	}
	e.token = "expired"
	if code := ExitCode(meRun(bg, &MeOptions{IO: e.f.IOStreams, Client: e.f.Client, Now: e.f.Now})); code != ExitAuth {
		t.Errorf("bad token exit %d", code)
	}
}

func TestVersion(t *testing.T) {
	e := newTestEnv(t)
	if err := versionRun(bg, &VersionOptions{IO: e.f.IOStreams, Client: e.f.Client, ClientVersion: "1.2.3"}); err != nil {
		t.Fatal(err)
	}
	if want := "Client Version: 1.2.3\nServer Version: 0.9.0 (abc123)\n"; e.out.String() != want {
		t.Errorf("got %q", e.out)
	}
	if ua := e.fake.userAgent; ua != "vmctl/1.2.3" {
		t.Errorf("User-Agent %q", ua)
	}
	e.out.Reset()
	e.server = ""
	if err := versionRun(bg, &VersionOptions{IO: e.f.IOStreams, Client: e.f.Client, ClientVersion: "1.2.3"}); err != nil {
		t.Fatal(err)
	}
	if e.out.String() != "Client Version: 1.2.3\n" {
		t.Errorf("without server: %q", e.out)
	}
}

func TestConfigCommands(t *testing.T) {
	e := newTestEnv(t)
	cfg := &Config{CurrentContext: "a", Contexts: map[string]*Context{
		"a": {Server: "http://a:8080", Token: "ta"},
		"b": {Server: "http://b:8080"},
	}}
	if err := cfg.Save(e.cfgPath); err != nil {
		t.Fatal(err)
	}
	opts := &ConfigOptions{IO: e.f.IOStreams, Config: e.f.Config, ConfigPath: e.f.ConfigPath, Output: "table"}
	if err := getContextsRun(opts); err != nil {
		t.Fatal(err)
	}
	if want := "*\ta\thttp://a:8080\ttrue\n\tb\thttp://b:8080\tfalse\n"; e.out.String() != want {
		t.Errorf("get-contexts = %q, want %q", e.out, want)
	}
	opts.Name = "b"
	if err := useContextRun(opts); err != nil {
		t.Fatal(err)
	}
	got, _ := LoadConfig(e.cfgPath)
	if got.CurrentContext != "b" || got.Contexts["a"].Token != "ta" {
		t.Errorf("after use-context: %+v", got)
	}
	opts.Name = "nope"
	if code := ExitCode(useContextRun(opts)); code != ExitNotFound {
		t.Errorf("unknown context exit %d", code)
	}
	e.out.Reset()
	opts.Output = "json"
	if err := getContextsRun(opts); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(e.out.String(), "ta") && strings.Contains(e.out.String(), `"ta"`) {
		t.Errorf("token leaked: %s", e.out)
	}
}
