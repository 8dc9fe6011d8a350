package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
)

func TestExitCode(t *testing.T) {
	apiErr := func(code string) error {
		return fmt.Errorf("get vm x: %w", &client.APIError{Status: 400, Code: code, Message: "m"})
	}
	tests := []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errors.New("boom"), ExitError},
		{flagErrorf("bad"), ExitUsage},
		{fmt.Errorf("wrapped: %w", &TimeoutError{What: "x"}), ExitTimeout},
		{&NotFoundError{What: "context"}, ExitNotFound},
		{&AuthError{Msg: "no"}, ExitAuth},
		{apiErr(api.CodeNotFound), ExitNotFound},
		{apiErr(api.CodeUnauthenticated), ExitAuth},
		{apiErr(api.CodeForbidden), ExitAuth},
		{apiErr(api.CodeCSRF), ExitAuth},
		{apiErr(api.CodeEmailUnverified), ExitAuth},
		{apiErr(api.CodeInvalidLogin), ExitAuth},
		{apiErr(api.CodeQuotaExceeded), ExitQuotaOrClash},
		{apiErr(api.CodeConflict), ExitQuotaOrClash},
		{apiErr(api.CodeValidation), ExitError},
		{apiErr(api.CodeBadRequest), ExitError},
		{apiErr(api.CodeInternal), ExitError},
		{apiErr(api.CodeRateLimited), ExitError},
		{apiErr(api.CodeAgentUnavailable), ExitAgentUnavailable},
		{&ExitStatusError{Code: 42}, 42},
		{errors.New(`unknown command "x" for "vmctl"`), ExitUsage},
		{errors.New(`required flag(s) "template" not set`), ExitUsage},
	}
	for _, tt := range tests {
		if got := ExitCode(tt.err); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// TestMain_ExitCodes runs the whole binary's entry point against the fake
// server, as a script would.
func TestMainExitCodes(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		stdin      string
		want       int
		wantOut    string
		wantErrOut string
	}{
		{"no args prints help", nil, "", ExitOK, "Usage:", ""},
		{"unknown command", []string{"frobnicate"}, "", ExitUsage, "", "unknown command"},
		{"unknown flag", []string{"list", "--nope"}, "", ExitUsage, "", "Run 'vmctl list --help' for usage."},
		{"bad output", []string{"list", "-o", "xml"}, "", ExitUsage, "", "valid values are"},
		{"missing arg", []string{"get"}, "", ExitUsage, "", "NAME is required"},
		{"list", []string{"list"}, "", ExitOK, "web\trunning", ""},
		{"ls alias name", []string{"ls", "-o", "name"}, "", ExitOK, "web\ndatabase\n", ""},
		{"get by name", []string{"get", "web", "-o", "json"}, "", ExitOK, `"id": "vm_01WEB"`, ""},
		{"get missing", []string{"get", "ghost"}, "", ExitNotFound, "", "vm ghost not found"},
		{"create conflict", []string{"create", "web", "--template", "tiny"}, "", ExitQuotaOrClash, "", "exists"},
		{"create no template", []string{"create", "x"}, "", ExitUsage, "", "--template is required"},
		{"create validation", []string{"create", "a b", "--template", "tiny"}, "", ExitError, "", "name is invalid"},
		{"delete needs yes", []string{"delete", "web"}, "", ExitUsage, "", "--yes is required"},
		{"rm alias", []string{"rm", "web", "--yes"}, "", ExitOK, "", "delete requested"},
		{"wait timeout", []string{"wait", "web", "--for", "state=stopped", "--timeout", "10ms"}, "", ExitTimeout, "", "timed out"},
		{"wait bad for", []string{"wait", "web", "--for", "state=bogus"}, "", ExitUsage, "", "unknown state"},
		{"bad token", []string{"me", "--token", "wrong"}, "", ExitAuth, "", "log in first"},
		{"templates", []string{"templates", "-o", "name"}, "", ExitOK, "tiny\n", ""},
		{"version", []string{"version"}, "", ExitOK, "Client Version: 9.9.9\nServer Version: 0.9.0", ""},
		{"completion", []string{"completion", "bash"}, "", ExitOK, "bash completion", ""},
		{"login bad password", []string{"login", "--email", "me@example.com", "--password-stdin"}, "wrong\n", ExitAuth, "", "wrong e-mail or password"},
		{"login no tty", []string{"login", "--email", "me@example.com"}, "", ExitUsage, "", "--password-stdin is required"},
		{"use missing context", []string{"config", "use-context", "nope"}, "", ExitNotFound, "", `context "nope" not found`},
		{"global unknown context", []string{"list", "--context", "nope"}, "", ExitNotFound, "", `context "nope" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cleanEnv(t)
			fake := newFakeVMD(t)
			seedVMs(fake)
			ios, in, out, errOut := TestStreams()
			in.WriteString(tt.stdin)
			cfg := filepath.Join(t.TempDir(), "config.yaml")
			args := append([]string{"--config", cfg, "--server", fake.URL(), "--token", "tok"}, tt.args...)
			if len(tt.args) == 0 {
				args = nil
			}
			got := Main(context.Background(), args, ios, "9.9.9")
			if got != tt.want {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", got, tt.want, out, errOut)
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("stdout %q lacks %q", out, tt.wantOut)
			}
			if !strings.Contains(errOut.String(), tt.wantErrOut) {
				t.Errorf("stderr %q lacks %q", errOut, tt.wantErrOut)
			}
			if tt.want != ExitOK && out.Len() > 0 && tt.wantOut == "" {
				t.Errorf("error wrote to stdout: %q", out)
			}
		})
	}
}

// TestMainLoginFlow logs in with --password-stdin, then uses only the
// stored context, as a user's shell would.
func TestMainLoginFlow(t *testing.T) {
	home := cleanEnv(t)
	fake := newFakeVMD(t)
	seedVMs(fake)
	run := func(stdin string, args ...string) (int, string, string) {
		ios, in, out, errOut := TestStreams()
		in.WriteString(stdin)
		code := Main(context.Background(), args, ios, "9.9.9")
		return code, out.String(), errOut.String()
	}
	if code, _, e := run("hunter2\n", "login", "--server", fake.URL(), "--email", "me@example.com", "--password-stdin"); code != 0 {
		t.Fatalf("login exit %d: %s", code, e)
	}
	cfgPath := filepath.Join(home, "vmctl", "config.yaml")
	st, err := os.Stat(cfgPath)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config %s: %v %v", cfgPath, st, err)
	}
	if code, out, e := run("", "list", "-o", "name"); code != 0 || out != "web\ndatabase\n" {
		t.Fatalf("list exit %d out %q err %q", code, out, e)
	}
	if fake.lastAuth != "Bearer tok" {
		t.Errorf("Authorization %q", fake.lastAuth)
	}
	host := strings.TrimPrefix(fake.URL(), "http://")
	if code, out, _ := run("", "config", "current-context"); code != 0 || out != host+"\n" {
		t.Errorf("current-context %d %q", code, out)
	}

	// VMCTL_TOKEN overrides the stored token; VMCTL_CONFIG moves the file
	t.Setenv("VMCTL_TOKEN", "wrong")
	if code, _, _ := run("", "me"); code != ExitAuth {
		t.Errorf("with VMCTL_TOKEN=wrong exit %d", code)
	}
	os.Unsetenv("VMCTL_TOKEN")
	t.Setenv("VMCTL_CONFIG", filepath.Join(home, "elsewhere.yaml"))
	if code, _, e := run("", "me"); code != ExitAuth || !strings.Contains(e, "no server configured") {
		t.Errorf("with empty VMCTL_CONFIG exit %d %q", code, e)
	}
	t.Setenv("VMCTL_SERVER", fake.URL())
	if code, _, e := run("", "me"); code != ExitAuth || !strings.Contains(e, "not logged in") {
		t.Errorf("server without token: exit %d %q", code, e)
	}
	os.Unsetenv("VMCTL_CONFIG")
	os.Unsetenv("VMCTL_SERVER")

	// a second login into a named context reuses its server
	if code, _, e := run("hunter2\n", "login", "--server", fake.URL(), "--context", "work", "--email", "me@example.com", "--password-stdin"); code != 0 {
		t.Fatalf("login --context exit %d: %s", code, e)
	}
	if code, _, e := run("", "config", "use-context", host); code != 0 {
		t.Fatalf("use-context exit %d: %s", code, e)
	}
	if code, _, e := run("hunter2\n", "--context", "work", "login", "--email", "me@example.com", "--password-stdin"); code != 0 || !strings.Contains(e, `context "work"`) {
		t.Fatalf("re-login exit %d: %s", code, e)
	}
	if code, out, _ := run("", "config", "get-contexts", "-o", "name"); code != 0 || out != host+"\nwork\n" {
		t.Errorf("contexts %q", out)
	}
	if code, _, e := run("", "logout"); code != 0 {
		t.Fatalf("logout exit %d: %s", code, e)
	}
	if code, _, _ := run("", "list"); code != ExitAuth {
		t.Errorf("list after logout exit %d", code)
	}
}
