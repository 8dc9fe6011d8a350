package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/vmdhq/vmd/pkg/client"
)

// Factory hands commands their dependencies, built lazily so that parsing
// argv needs no config file and no server.
type Factory struct {
	IOStreams *IOStreams
	Version   string
	Now       func() time.Time

	// ConfigPath returns the contexts file's path after --config/VMCTL_CONFIG.
	ConfigPath func() string
	// Config loads the contexts file.
	Config func() (*Config, error)
	// Target returns the server and token after overrides.
	Target func() (Target, error)
	// Client returns an API client for Target; it fails with an AuthError
	// when no server is configured.
	Client func() (*client.Client, error)
}

// settings layers the global flags over VMCTL_* environment variables
// through a private viper instance.
type settings struct{ v *viper.Viper }

func newSettings(flags *pflag.FlagSet) (*settings, error) {
	v := viper.New()
	for key, env := range map[string]string{
		"server":  "VMCTL_SERVER",
		"token":   "VMCTL_TOKEN",
		"context": "VMCTL_CONTEXT",
		"config":  "VMCTL_CONFIG",
	} {
		if err := v.BindPFlag(key, flags.Lookup(key)); err != nil {
			return nil, fmt.Errorf("bind flag %s: %w", key, err)
		}
		if err := v.BindEnv(key, env); err != nil {
			return nil, fmt.Errorf("bind env %s: %w", env, err)
		}
	}
	return &settings{v: v}, nil
}

// newFactory builds the real Factory over the root command's global flags.
func newFactory(ios *IOStreams, version string, s *settings) *Factory {
	f := &Factory{IOStreams: ios, Version: version, Now: time.Now}
	f.ConfigPath = func() string {
		if p := s.v.GetString("config"); p != "" {
			return p
		}
		return DefaultConfigPath(os.Getenv)
	}
	f.Config = func() (*Config, error) { return LoadConfig(f.ConfigPath()) }
	f.Target = func() (Target, error) {
		cfg, err := f.Config()
		if err != nil {
			return Target{}, err
		}
		return resolveTarget(cfg, s.v.GetString("context"), s.v.GetString("server"), s.v.GetString("token"))
	}
	f.Client = func() (*client.Client, error) {
		t, err := f.Target()
		if err != nil {
			return nil, err
		}
		if t.Server == "" {
			return nil, &AuthError{Msg: "no server configured: run 'vmctl login --server URL' or set VMCTL_SERVER"}
		}
		return client.New(t.Server, t.Token, client.WithVersion(version)), nil
	}
	return f
}

// authedClient returns f.Client's client, or an AuthError when it carries
// no token, so commands that need a login fail before calling the server.
func authedClient(newClient func() (*client.Client, error)) (*client.Client, error) {
	c, err := newClient()
	if err != nil {
		return nil, err
	}
	if !c.HasToken() {
		return nil, &AuthError{Msg: fmt.Sprintf("not logged in to %s: run 'vmctl login'", c.Server())}
	}
	return c, nil
}
