package cli

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
)

// Main runs vmctl with args (without the program name) and returns the exit
// status. It is the only place that turns errors into exit codes and prints
// them.
func Main(ctx context.Context, args []string, ios *IOStreams, version string) int {
	if version == "" {
		version = buildVersion()
	}
	root, err := NewCmdRoot(ios, version)
	if err != nil {
		fmt.Fprintf(ios.ErrOut, "error: %v\n", err)
		return ExitError
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	code := ExitCode(err)
	var status *ExitStatusError
	switch {
	case errors.As(err, &status):
		// a guest command's own exit status: it has said what it had to
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		fmt.Fprintln(ios.ErrOut, "cancelled")
	default:
		fmt.Fprintf(ios.ErrOut, "error: %v\n", err)
		if code == ExitUsage && cmd != nil {
			fmt.Fprintf(ios.ErrOut, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	}
	return code
}

// buildVersion is the module version Go stamped into the binary, for builds
// without -ldflags.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// NewCmdRoot builds the vmctl command tree writing to ios.
func NewCmdRoot(ios *IOStreams, version string) (*cobra.Command, error) {
	root := &cobra.Command{
		Use:   "vmctl",
		Short: "Manage virtual machines on a vmd server",
		Long: `vmctl talks to a vmd server's HTTP API.

Log in once with 'vmctl login --server URL'; the token is kept in
~/.config/vmctl/config.yaml under a named context.`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetIn(ios.In)
	root.SetOut(ios.Out)
	root.SetErr(ios.ErrOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &FlagError{err: err} })

	pf := root.PersistentFlags()
	pf.String("server", "", "vmd server URL (env VMCTL_SERVER)")
	pf.String("token", "", "bearer token (env VMCTL_TOKEN)")
	pf.String("context", "", "context of the config file to use (env VMCTL_CONTEXT)")
	pf.String("config", "", "config file (env VMCTL_CONFIG; default $XDG_CONFIG_HOME/vmctl/config.yaml)")
	pf.BoolVarP(&ios.Quiet, "quiet", "q", ios.Quiet, "print no informational messages on stderr, only errors")

	s, err := newSettings(pf)
	if err != nil {
		return nil, err
	}
	f := newFactory(ios, version, s)
	_ = root.RegisterFlagCompletionFunc("context", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		cfg, err := f.Config()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		return cfg.ContextNames(), cobra.ShellCompDirectiveNoFileComp
	})

	root.AddCommand(
		NewCmdLogin(f, nil),
		NewCmdSignup(f, nil),
		NewCmdVerify(f, nil),
		NewCmdResendVerification(f, nil),
		NewCmdPassword(f),
		NewCmdLogout(f, nil),
		NewCmdMe(f, nil),
		NewCmdCreate(f, nil),
		NewCmdList(f, nil),
		NewCmdGet(f, nil),
		NewCmdStart(f, nil),
		NewCmdStop(f, nil),
		NewCmdDelete(f, nil),
		NewCmdWait(f, nil),
		NewCmdConsole(f, nil),
		NewCmdTemplates(f, nil),
		NewCmdTUI(f, nil),
		NewCmdVersion(f, nil),
		NewCmdConfig(f),
		NewCmdPause(f, nil),
		NewCmdResume(f, nil),
		NewCmdExtend(f, nil),
		NewCmdExec(f, nil),
		NewCmdCopy(f, nil),
		NewCmdSnapshot(f, nil),
		NewCmdLogs(f, nil),
		NewCmdSSHKey(f, nil),
		NewCmdScreenshot(f, nil),
		NewCmdPortForward(f, nil),
		NewCmdSSH(f, nil),
		NewCmdShell(f, nil),
	)
	return root, nil
}

// exactArgs is cobra.ExactArgs returning a FlagError, so a missing NAME
// exits 2.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			if len(args) < n {
				return flagErrorf("%s is required", what)
			}
			return flagErrorf("%q takes %d argument(s), got %d", cmd.CommandPath(), n, len(args))
		}
		return nil
	}
}

// noArgs rejects positional arguments with a FlagError.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return flagErrorf("unexpected argument %q for %q", args[0], cmd.CommandPath())
	}
	return nil
}

// completeVMNames completes the first argument with the caller's VM names.
func completeVMNames(f *Factory) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := authedClient(f.Client)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
		defer cancel()
		vms, err := c.ListVMs(ctx, false)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		names := make([]string, 0, len(vms))
		for _, vm := range vms {
			names = append(names, vm.Name)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
