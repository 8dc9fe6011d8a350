package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
)

// CredentialOptions are the flags login and signup share.
type CredentialOptions struct {
	IO         *IOStreams
	Target     func() (Target, error)
	Config     func() (*Config, error)
	ConfigPath func() string
	NewClient  func(server string) *client.Client

	Server        string
	ContextName   string
	Email         string
	PasswordStdin bool
}

func credentialOptions(f *Factory) *CredentialOptions {
	return &CredentialOptions{
		IO: f.IOStreams, Target: f.Target, Config: f.Config, ConfigPath: f.ConfigPath,
		NewClient: func(server string) *client.Client {
			return client.New(server, "", client.WithVersion(f.Version))
		},
	}
}

func (o *CredentialOptions) addFlags(cmd *cobra.Command) {
	// These shadow the global --server/--context so they show in this
	// command's help; VMCTL_SERVER still applies through Target.
	cmd.Flags().StringVar(&o.Server, "server", "", "vmd server URL (env VMCTL_SERVER; default: the current context's)")
	cmd.Flags().StringVar(&o.ContextName, "context", "", "context to store the login in (default: the server's host:port)")
	cmd.Flags().StringVar(&o.Email, "email", "", "account e-mail")
	cmd.Flags().BoolVar(&o.PasswordStdin, "password-stdin", false, "read the password from the first line of stdin")
}

// server returns --server, else VMCTL_SERVER or the current context's.
func (o *CredentialOptions) server() (string, error) {
	if o.Server != "" {
		return o.Server, nil
	}
	if o.ContextName != "" {
		// re-login to a known context without repeating its server
		cfg, err := o.Config()
		if err != nil {
			return "", err
		}
		if c := cfg.Contexts[o.ContextName]; c != nil && c.Server != "" {
			return c.Server, nil
		}
	}
	t, err := o.Target()
	if err != nil {
		return "", err
	}
	if t.Server == "" {
		return "", flagErrorf("--server is required: no server is configured")
	}
	return t.Server, nil
}

// credentials returns the e-mail and password from flags, stdin or prompts.
func (o *CredentialOptions) credentials(confirm bool) (email, password string, err error) {
	email = strings.TrimSpace(o.Email)
	if email == "" {
		if o.PasswordStdin || !o.IO.CanPrompt() {
			return "", "", flagErrorf("--email is required when not running interactively or with --password-stdin")
		}
		if email, err = o.IO.Prompt("E-mail: "); err != nil {
			return "", "", err
		}
		if email == "" {
			return "", "", flagErrorf("an e-mail address is required")
		}
	}
	switch {
	case o.PasswordStdin:
		if password, err = o.IO.ReadLine(); err != nil {
			return "", "", flagErrorf("--password-stdin: no password on stdin")
		}
	case o.IO.CanPrompt():
		if password, err = o.IO.PromptPassword("Password: "); err != nil {
			return "", "", err
		}
		if confirm && password != "" {
			again, err := o.IO.PromptPassword("Password again: ")
			if err != nil {
				return "", "", err
			}
			if again != password {
				return "", "", fmt.Errorf("the passwords do not match")
			}
		}
	default:
		return "", "", flagErrorf("--password-stdin is required when not running interactively")
	}
	if password == "" {
		return "", "", flagErrorf("the password is empty")
	}
	return email, password, nil
}

// LoginOptions are the inputs of vmctl login.
type LoginOptions struct{ *CredentialOptions }

// NewCmdLogin builds `vmctl login`.
func NewCmdLogin(f *Factory, runF func(context.Context, *LoginOptions) error) *cobra.Command {
	opts := &LoginOptions{credentialOptions(f)}
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in and store a token in the current context",
		Example: `  vmctl login --server http://127.0.0.1:8080 --email me@example.com
  echo "$PASSWORD" | vmctl login --server http://vmd:8080 --email me@example.com --password-stdin`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return loginRun(cmd.Context(), opts)
		},
	}
	opts.addFlags(cmd)
	return cmd
}

func loginRun(ctx context.Context, opts *LoginOptions) error {
	server, err := opts.server()
	if err != nil {
		return err
	}
	email, password, err := opts.credentials(false)
	if err != nil {
		return err
	}
	resp, err := opts.NewClient(server).Login(ctx, email, password)
	if err != nil {
		return err
	}
	cfg, err := opts.Config()
	if err != nil {
		return err
	}
	name := opts.ContextName
	if name == "" {
		name = contextNameFor(server)
	}
	// stored normalised, so "h:8080" and "http://h:8080/" are one server
	server = client.New(server, "").Server()
	cfg.Contexts[name] = &Context{Server: server, Token: resp.Token}
	cfg.CurrentContext = name
	if err := cfg.Save(opts.ConfigPath()); err != nil {
		return err
	}
	opts.IO.Infof("Logged in to %s as %s (context %q).\n", server, email, name)
	return nil
}

// SignupOptions are the inputs of vmctl signup.
type SignupOptions struct{ *CredentialOptions }

// NewCmdSignup builds `vmctl signup`.
func NewCmdSignup(f *Factory, runF func(context.Context, *SignupOptions) error) *cobra.Command {
	opts := &SignupOptions{credentialOptions(f)}
	cmd := &cobra.Command{
		Use:   "signup",
		Short: "Create an account; a verification e-mail is sent",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return signupRun(cmd.Context(), opts)
		},
	}
	opts.addFlags(cmd)
	_ = cmd.Flags().MarkHidden("context")
	return cmd
}

func signupRun(ctx context.Context, opts *SignupOptions) error {
	server, err := opts.server()
	if err != nil {
		return err
	}
	email, password, err := opts.credentials(true)
	if err != nil {
		return err
	}
	if _, err := opts.NewClient(server).Signup(ctx, email, password); err != nil {
		return err
	}
	opts.IO.Infof("Signed up %s. A verification e-mail was sent: open its link or run 'vmctl verify TOKEN', then 'vmctl login'.\n", email)
	return nil
}

// VerifyOptions are the inputs of vmctl verify.
type VerifyOptions struct {
	IO        *IOStreams
	Target    func() (Target, error)
	NewClient func(server string) *client.Client

	Token      string
	TokenStdin bool // read the token from the first line of stdin
}

// NewCmdVerify builds `vmctl verify TOKEN`.
func NewCmdVerify(f *Factory, runF func(context.Context, *VerifyOptions) error) *cobra.Command {
	co := credentialOptions(f)
	opts := &VerifyOptions{IO: f.IOStreams, Target: f.Target, NewClient: co.NewClient}
	cmd := &cobra.Command{
		Use:   "verify TOKEN",
		Short: "Confirm an e-mail address with the token from the verification e-mail",
		Long: `Confirm an e-mail address with the token from the verification e-mail.

Tokens vmd issues never start with '-'. A token that does (say, from an older
e-mail) goes after '--', which ends the flags. To keep the token out of the
shell history and process list, give '-' or --token-stdin and pipe it in.`,
		Example: `  vmctl verify Xq3...
  vmctl verify -- -Xq3...
  pbpaste | vmctl verify -`,
		Args: func(cmd *cobra.Command, args []string) error {
			if opts.TokenStdin {
				return noArgs(cmd, args)
			}
			return exactArgs(1, "TOKEN (or --token-stdin)")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				// "-" is stdin, as in kubectl -f - and gh --body-file -.
				if args[0] == "-" {
					opts.TokenStdin = true
				} else {
					opts.Token = args[0]
				}
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return verifyRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.TokenStdin, "token-stdin", false, "read the token from the first line of stdin")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		// Most likely an old token that starts with '-': say how to pass it.
		return flagErrorf("%w (a token that starts with '-' goes after '--': vmctl verify -- TOKEN)", err)
	})
	return cmd
}

func verifyRun(ctx context.Context, opts *VerifyOptions) error {
	t, err := opts.Target()
	if err != nil {
		return err
	}
	if t.Server == "" {
		return flagErrorf("no server configured: pass --server URL")
	}
	if opts.TokenStdin {
		line, err := opts.IO.ReadLine()
		if opts.Token = strings.TrimSpace(line); err != nil || opts.Token == "" {
			return flagErrorf("--token-stdin: no token on stdin")
		}
	}
	if err := opts.NewClient(t.Server).Verify(ctx, opts.Token); err != nil {
		return err
	}
	opts.IO.Infof("E-mail address verified; you can now 'vmctl login'.\n")
	return nil
}

// LogoutOptions are the inputs of vmctl logout.
type LogoutOptions struct {
	IO         *IOStreams
	Client     func() (*client.Client, error)
	Target     func() (Target, error)
	Config     func() (*Config, error)
	ConfigPath func() string
}

// NewCmdLogout builds `vmctl logout`.
func NewCmdLogout(f *Factory, runF func(context.Context, *LogoutOptions) error) *cobra.Command {
	opts := &LogoutOptions{IO: f.IOStreams, Client: f.Client, Target: f.Target, Config: f.Config, ConfigPath: f.ConfigPath}
	return &cobra.Command{
		Use:   "logout",
		Short: "End the session and forget the current context's token",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return logoutRun(cmd.Context(), opts)
		},
	}
}

func logoutRun(ctx context.Context, opts *LogoutOptions) error {
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	// an expired session is as good as ended: still forget the token
	if err := c.Logout(ctx); err != nil && !client.IsUnauthenticated(err) {
		return err
	}
	t, err := opts.Target()
	if err != nil {
		return err
	}
	cfg, err := opts.Config()
	if err != nil {
		return err
	}
	if cc := cfg.Contexts[t.Context]; cc != nil && cc.Token != "" && sameServer(cc.Server, t.Server) {
		cc.Token = ""
		if err := cfg.Save(opts.ConfigPath()); err != nil {
			return err
		}
	}
	opts.IO.Infof("Logged out of %s.\n", c.Server())
	return nil
}

// MeOptions are the inputs of vmctl me.
type MeOptions struct {
	IO     *IOStreams
	Client func() (*client.Client, error)
	Now    func() time.Time

	Output string
}

// NewCmdMe builds `vmctl me`.
func NewCmdMe(f *Factory, runF func(context.Context, *MeOptions) error) *cobra.Command {
	opts := &MeOptions{IO: f.IOStreams, Client: f.Client, Now: f.Now}
	cmd := &cobra.Command{
		Use:   "me",
		Short: "Show the logged-in user, quota and usage",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return meRun(cmd.Context(), opts)
		},
	}
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func meRun(ctx context.Context, opts *MeOptions) error {
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	u, err := c.Me(ctx)
	if err != nil {
		return err
	}
	return printUser(opts.IO, opts.Now(), opts.Output, u)
}

func printUser(ios *IOStreams, now time.Time, format string, u *api.User) error {
	if isTable, err := printObjects(ios, format, u, []*api.User{u}, func(u *api.User) string { return u.Email }); !isTable {
		return err
	}
	of := func(used, limit int) string { return fmt.Sprintf("%d/%d", used, limit) }
	t := &table{header: []string{"EMAIL", "ADMIN", "VMS", "CPUS", "MEMORY(MB)", "DISK(GB)"}}
	row := plain(u.Email, fmt.Sprint(u.Admin), of(u.Usage.VMs, u.Quota.VMs), of(u.Usage.CPUs, u.Quota.CPUs),
		of(u.Usage.MemoryMB, u.Quota.MemoryMB), of(u.Usage.DiskGB, u.Quota.DiskGB))
	if format == formatWide {
		t.header = append(t.header, "ID", "VERIFIED", "CREATED")
		row = append(row, plain(u.ID, fmt.Sprint(u.Verified), timeCell(ios, now, u.CreatedAt))...)
	}
	t.add(row...)
	return t.render(ios)
}
