package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestConfigRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "config.yaml")
	empty, err := LoadConfig(path)
	if err != nil || len(empty.Contexts) != 0 || empty.CurrentContext != "" {
		t.Fatalf("missing file: %+v %v", empty, err)
	}
	cfg := &Config{CurrentContext: "Prod.Example:443", Contexts: map[string]*Context{
		"Prod.Example:443": {Server: "https://prod.example", Token: "t1"},
		"local":            {Server: "http://127.0.0.1:8080"},
	}}
	if err := cfg.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, cfg) {
		t.Errorf("round trip: got %+v want %+v", got, cfg)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
	b, _ := os.ReadFile(path)
	// keys keep their case and layout, unlike viper.WriteConfig
	for _, want := range []string{"current-context: Prod.Example:443\n", "contexts:\n", "  local:\n    server: http://127.0.0.1:8080\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("file lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(string(b), "token: \"\"") {
		t.Errorf("empty token written:\n%s", b)
	}
	if err := os.WriteFile(path, []byte("contexts: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil {
		t.Error("broken file parsed")
	}
}

func TestDefaultConfigPath(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if got := DefaultConfigPath(env(map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"})); got != "/x/vmctl/config.yaml" {
		t.Errorf("xdg: %s", got)
	}
	if got := DefaultConfigPath(env(map[string]string{"HOME": "/h"})); got != "/h/.config/vmctl/config.yaml" {
		t.Errorf("home: %s", got)
	}
}

func TestResolveTarget(t *testing.T) {
	cfg := &Config{CurrentContext: "a", Contexts: map[string]*Context{
		"a": {Server: "http://a:1", Token: "ta"},
		"b": {Server: "http://b:1/", Token: "tb"},
		"c": {Server: "http://c:1"},
	}}
	tests := []struct {
		name, ctx, server, token string
		want                     Target
		wantErr                  bool
	}{
		{"current", "", "", "", Target{"a", "http://a:1", "ta"}, false},
		{"context flag", "b", "", "", Target{"b", "http://b:1/", "tb"}, false},
		{"token override", "", "", "x", Target{"a", "http://a:1", "x"}, false},
		{"server of another context takes its token", "", "http://b:1", "", Target{"b", "http://b:1", "tb"}, false},
		{"server without scheme matches", "", "b:1", "", Target{"b", "b:1", "tb"}, false},
		{"unknown server gets no token", "", "http://evil:1", "", Target{"a", "http://evil:1", ""}, false},
		{"context without token", "c", "", "", Target{"c", "http://c:1", ""}, false},
		{"unknown context", "zz", "", "", Target{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveTarget(cfg, tt.ctx, tt.server, tt.token)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if got != tt.want {
				t.Errorf("got %+v want %+v", got, tt.want)
			}
		})
	}
	if got, _ := resolveTarget(&Config{Contexts: map[string]*Context{}}, "", "", ""); got != (Target{}) {
		t.Errorf("empty config: %+v", got)
	}
}

func TestContextNameFor(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8080":    "127.0.0.1:8080",
		"https://vmd.example/":     "vmd.example",
		"vmd.example:9000/api/v1/": "vmd.example:9000",
	} {
		if got := contextNameFor(in); got != want {
			t.Errorf("contextNameFor(%q) = %q, want %q", in, got, want)
		}
	}
}
