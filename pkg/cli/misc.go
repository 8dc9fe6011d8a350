package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
)

// TemplatesOptions are the inputs of vmctl templates.
type TemplatesOptions struct {
	IO     *IOStreams
	Client func() (*client.Client, error)
	Now    func() time.Time

	Output string
}

// NewCmdTemplates builds `vmctl templates`.
func NewCmdTemplates(f *Factory, runF func(context.Context, *TemplatesOptions) error) *cobra.Command {
	opts := &TemplatesOptions{IO: f.IOStreams, Client: f.Client, Now: f.Now}
	cmd := &cobra.Command{
		Use:     "templates",
		Aliases: []string{"template"},
		Short:   "List the templates VMs can be created from",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return templatesRun(cmd.Context(), opts)
		},
	}
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func templatesRun(ctx context.Context, opts *TemplatesOptions) error {
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	ts, err := c.Templates(ctx)
	if err != nil {
		return err
	}
	ios := opts.IO
	if isTable, err := printObjects(ios, opts.Output, ts, ts, func(t api.Template) string { return t.Name }); !isTable {
		return err
	}
	if len(ts) == 0 {
		ios.Infof("No templates found.\n")
		return nil
	}
	t := &table{header: []string{"NAME", "SIZE", "SHA256", createdHeader(ios)}}
	now := opts.Now()
	for _, tp := range ts {
		sum := tp.SHA256
		if opts.Output != formatWide && len(sum) > 12 && ios.OutTTY {
			sum = sum[:12]
		}
		t.add(plain(tp.Name, humanBytes(ios, tp.SizeBytes), sum, timeCell(ios, now, tp.CreatedAt))...)
	}
	return t.render(ios)
}

// VersionOptions are the inputs of vmctl version.
type VersionOptions struct {
	IO            *IOStreams
	Client        func() (*client.Client, error)
	ClientVersion string

	ClientOnly bool
}

// NewCmdVersion builds `vmctl version`.
func NewCmdVersion(f *Factory, runF func(context.Context, *VersionOptions) error) *cobra.Command {
	opts := &VersionOptions{IO: f.IOStreams, Client: f.Client, ClientVersion: f.Version}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client's and the server's version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return versionRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.ClientOnly, "client", false, "print only the client's version")
	return cmd
}

func versionRun(ctx context.Context, opts *VersionOptions) error {
	fmt.Fprintf(opts.IO.Out, "Client Version: %s\n", opts.ClientVersion)
	if opts.ClientOnly {
		return nil
	}
	c, err := opts.Client()
	var ae *AuthError
	if errors.As(err, &ae) {
		// no server configured: the client's version is all there is
		return nil
	}
	if err != nil {
		return err
	}
	v, err := c.Version(ctx)
	if err != nil {
		return err
	}
	s := v.Version
	if v.Commit != "" {
		s += " (" + v.Commit + ")"
	}
	fmt.Fprintf(opts.IO.Out, "Server Version: %s\n", s)
	return nil
}

// ConfigOptions are the inputs of the vmctl config subcommands.
type ConfigOptions struct {
	IO         *IOStreams
	Config     func() (*Config, error)
	ConfigPath func() string

	Name   string
	Output string
}

// NewCmdConfig builds `vmctl config` and its subcommands.
func NewCmdConfig(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show and switch contexts of the config file",
		Args:  noArgs,
	}
	cmd.AddCommand(NewCmdUseContext(f, nil), NewCmdGetContexts(f, nil), NewCmdCurrentContext(f, nil))
	return cmd
}

func configOptions(f *Factory) *ConfigOptions {
	return &ConfigOptions{IO: f.IOStreams, Config: f.Config, ConfigPath: f.ConfigPath}
}

// NewCmdUseContext builds `vmctl config use-context NAME`.
func NewCmdUseContext(f *Factory, runF func(*ConfigOptions) error) *cobra.Command {
	opts := configOptions(f)
	return &cobra.Command{
		Use:   "use-context NAME",
		Short: "Make NAME the current context",
		Args:  exactArgs(1, "NAME"),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			cfg, err := opts.Config()
			if err != nil {
				return nil, cobra.ShellCompDirectiveError
			}
			return cfg.ContextNames(), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(_ *cobra.Command, args []string) error {
			opts.Name = args[0]
			if runF != nil {
				return runF(opts)
			}
			return useContextRun(opts)
		},
	}
}

func useContextRun(opts *ConfigOptions) error {
	cfg, err := opts.Config()
	if err != nil {
		return err
	}
	if cfg.Contexts[opts.Name] == nil {
		return &NotFoundError{What: fmt.Sprintf("context %q", opts.Name)}
	}
	cfg.CurrentContext = opts.Name
	if err := cfg.Save(opts.ConfigPath()); err != nil {
		return err
	}
	opts.IO.Infof("Switched to context %q.\n", opts.Name)
	return nil
}

// NewCmdGetContexts builds `vmctl config get-contexts`.
func NewCmdGetContexts(f *Factory, runF func(*ConfigOptions) error) *cobra.Command {
	opts := configOptions(f)
	cmd := &cobra.Command{
		Use:   "get-contexts",
		Short: "List the contexts of the config file",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			if runF != nil {
				return runF(opts)
			}
			return getContextsRun(opts)
		},
	}
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

// contextView is a context as get-contexts -o json|yaml prints it; the
// token is never printed, only whether there is one.
type contextView struct {
	Name     string `json:"name"`
	Current  bool   `json:"current"`
	Server   string `json:"server"`
	LoggedIn bool   `json:"logged_in"`
}

func getContextsRun(opts *ConfigOptions) error {
	cfg, err := opts.Config()
	if err != nil {
		return err
	}
	views := []contextView{}
	for _, n := range cfg.ContextNames() {
		c := cfg.Contexts[n]
		views = append(views, contextView{Name: n, Current: n == cfg.CurrentContext, Server: c.Server, LoggedIn: c.Token != ""})
	}
	if isTable, err := printObjects(opts.IO, opts.Output, views, views, func(v contextView) string { return v.Name }); !isTable {
		return err
	}
	t := &table{header: []string{"CURRENT", "NAME", "SERVER", "LOGGED IN"}}
	for _, v := range views {
		cur := ""
		if v.Current {
			cur = "*"
		}
		t.add(plain(cur, v.Name, v.Server, fmt.Sprint(v.LoggedIn))...)
	}
	return t.render(opts.IO)
}

// NewCmdCurrentContext builds `vmctl config current-context`.
func NewCmdCurrentContext(f *Factory, runF func(*ConfigOptions) error) *cobra.Command {
	opts := configOptions(f)
	return &cobra.Command{
		Use:   "current-context",
		Short: "Print the current context's name",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			if runF != nil {
				return runF(opts)
			}
			cfg, err := opts.Config()
			if err != nil {
				return err
			}
			if cfg.CurrentContext == "" {
				return &NotFoundError{What: "current context"}
			}
			_, err = fmt.Fprintln(opts.IO.Out, cfg.CurrentContext)
			return err
		},
	}
}
