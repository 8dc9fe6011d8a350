package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/vmdhq/vmd/pkg/client"
)

// Config is vmctl's contexts file, ~/.config/vmctl/config.yaml.
type Config struct {
	CurrentContext string              `yaml:"current-context"`
	Contexts       map[string]*Context `yaml:"contexts"`
}

// Context is one server and the token vmctl holds for it.
type Context struct {
	Server string `yaml:"server"`
	Token  string `yaml:"token,omitempty"`
}

// DefaultConfigPath is where the contexts file lives when neither --config
// nor VMCTL_CONFIG says otherwise: $XDG_CONFIG_HOME/vmctl/config.yaml, or
// ~/.config/vmctl/config.yaml.
func DefaultConfigPath(getenv func(string) string) string {
	if x := getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "vmctl", "config.yaml")
	}
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, ".config", "vmctl", "config.yaml")
}

// LoadConfig reads the contexts file; a missing file is an empty Config.
func LoadConfig(path string) (*Config, error) {
	cfg := &Config{Contexts: map[string]*Context{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if err := yaml.Unmarshal(data, cfg); err != nil {
		return nil, fmt.Errorf("parse config %s: %w", path, err)
	}
	if cfg.Contexts == nil {
		cfg.Contexts = map[string]*Context{}
	}
	for name, c := range cfg.Contexts {
		if c == nil {
			cfg.Contexts[name] = &Context{}
		}
	}
	return cfg, nil
}

// Save writes the file atomically with mode 0600, since it holds tokens.
func (c *Config) Save(path string) error {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create config dir %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".config-*.yaml")
	if err != nil {
		return fmt.Errorf("write config %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write config %s: %w", path, err)
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("write config %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write config %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write config %s: %w", path, err)
	}
	return nil
}

// ContextNames returns the context names sorted.
func (c *Config) ContextNames() []string {
	names := make([]string, 0, len(c.Contexts))
	for n := range c.Contexts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Target is the server and token a command talks to, after flags and
// environment have overridden the contexts file.
type Target struct {
	Context string
	Server  string
	Token   string
}

// resolveTarget layers --context/--server/--token (or their VMCTL_ env
// vars) over the file. A token is only taken from a context whose server is
// the one being called, so an overridden server never receives another
// server's token.
func resolveTarget(cfg *Config, contextName, server, token string) (Target, error) {
	name := contextName
	if name == "" {
		name = cfg.CurrentContext
	}
	ctx := cfg.Contexts[name]
	if contextName != "" && ctx == nil {
		return Target{}, &NotFoundError{What: fmt.Sprintf("context %q", contextName)}
	}
	t := Target{Context: name, Server: server, Token: token}
	if t.Server == "" && ctx != nil {
		t.Server = ctx.Server
	}
	if t.Token != "" || t.Server == "" {
		return t, nil
	}
	if ctx != nil && sameServer(ctx.Server, t.Server) {
		t.Token = ctx.Token
		return t, nil
	}
	for _, n := range cfg.ContextNames() {
		if c := cfg.Contexts[n]; sameServer(c.Server, t.Server) && c.Token != "" {
			t.Context, t.Token = n, c.Token
			return t, nil
		}
	}
	return t, nil
}

func sameServer(a, b string) bool {
	return a != "" && client.BaseURL(a) == client.BaseURL(b)
}

// contextNameFor names a new context after the server's host and port.
func contextNameFor(server string) string {
	u, err := url.Parse(client.BaseURL(server))
	if err != nil || u.Host == "" {
		return strings.TrimSpace(server)
	}
	return u.Host
}
