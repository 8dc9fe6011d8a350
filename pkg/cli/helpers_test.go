package cli

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/client"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// testEnv is a Factory wired to test streams, a temp config file and a fake vmd.
type testEnv struct {
	f       *Factory
	in      *bytes.Buffer
	out     *bytes.Buffer
	errOut  *bytes.Buffer
	cfgPath string
	fake    *fakeVMD
	// server and token the Factory's client uses
	server, token string
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	ios, in, out, errOut := TestStreams()
	e := &testEnv{in: in, out: out, errOut: errOut, fake: newFakeVMD(t)}
	e.server, e.token = e.fake.URL(), "tok"
	e.cfgPath = filepath.Join(t.TempDir(), "vmctl", "config.yaml")
	f := &Factory{IOStreams: ios, Version: "1.2.3", Now: func() time.Time { return fakeNow.Add(90 * time.Minute) }}
	f.ConfigPath = func() string { return e.cfgPath }
	f.Config = func() (*Config, error) { return LoadConfig(e.cfgPath) }
	f.Target = func() (Target, error) {
		cfg, err := f.Config()
		if err != nil {
			return Target{}, err
		}
		return resolveTarget(cfg, "", e.server, e.token)
	}
	f.Client = func() (*client.Client, error) {
		if e.server == "" {
			return nil, &AuthError{Msg: "no server configured"}
		}
		return client.New(e.server, e.token, client.WithVersion("1.2.3")), nil
	}
	e.f = f
	return e
}

// tty makes stdin and stdout look like a terminal.
func (e *testEnv) tty() {
	e.f.IOStreams.InTTY, e.f.IOStreams.OutTTY, e.f.IOStreams.ErrTTY = true, true, true
}

// cleanEnv keeps the developer's own vmctl settings out of a test.
func cleanEnv(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, k := range []string{"VMCTL_SERVER", "VMCTL_TOKEN", "VMCTL_CONTEXT", "VMCTL_CONFIG", "NO_COLOR"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("HOME", dir)
	return dir
}

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden %s (run with -update to create): %v", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

var bg = context.Background()
