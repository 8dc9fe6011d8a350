package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
)

// NewCmdPause builds `vmctl pause NAME`.
func NewCmdPause(f *Factory, runF func(context.Context, *PowerOptions) error) *cobra.Command {
	opts := &PowerOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:               "pause NAME",
		Short:             "Freeze a running virtual machine (its console shows the frozen screen)",
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: completeVMNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return powerRun(cmd.Context(), opts, "pause", pauseCall)
		},
	}
}

// NewCmdResume builds `vmctl resume NAME`.
func NewCmdResume(f *Factory, runF func(context.Context, *PowerOptions) error) *cobra.Command {
	opts := &PowerOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:               "resume NAME",
		Short:             "Let a paused virtual machine run again",
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: completeVMNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return powerRun(cmd.Context(), opts, "resume", resumeCall)
		},
	}
}

// The API calls of pause and resume.
var (
	pauseCall  = (*client.Client).PauseVM
	resumeCall = (*client.Client).ResumeVM
)

// powerRun asks for one state change and says it was accepted.
func powerRun(ctx context.Context, opts *PowerOptions, what string,
	call func(*client.Client, context.Context, string) (*api.VM, error)) error {
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	vm, err := call(c, ctx, opts.Name)
	if err != nil {
		return err
	}
	opts.IO.Infof("vm %s: %s requested (state %s)\n", vm.Name, what, vm.State)
	return nil
}

// ExtendOptions are the inputs of vmctl extend.
type ExtendOptions struct {
	IO     *IOStreams
	Client func() (*client.Client, error)
	Now    func() time.Time

	Name   string
	TTL    string
	Output string
}

// NewCmdExtend builds `vmctl extend NAME TTL`.
func NewCmdExtend(f *Factory, runF func(context.Context, *ExtendOptions) error) *cobra.Command {
	opts := &ExtendOptions{IO: f.IOStreams, Client: f.Client, Now: f.Now}
	cmd := &cobra.Command{
		Use:   "extend NAME TTL",
		Short: "Make a virtual machine expire TTL from now (not TTL later than before)",
		Example: `  vmctl extend ci-runner 30m
  vmctl create ci-runner --template tiny --ttl 1h && vmctl extend ci-runner 2h`,
		Args:              exactArgs(2, "NAME TTL"),
		ValidArgsFunction: completeVMNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name, opts.TTL = args[0], args[1]
			if _, err := time.ParseDuration(opts.TTL); err != nil {
				return flagErrorf("TTL %q is not a duration (use 90s, 30m, 2h)", opts.TTL)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return extendRun(cmd.Context(), opts)
		},
	}
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func extendRun(ctx context.Context, opts *ExtendOptions) error {
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	vm, err := c.ExtendVM(ctx, opts.Name, opts.TTL)
	if err != nil {
		return err
	}
	if opts.Output == "" && vm.ExpiresAt != nil {
		opts.IO.Infof("vm %s: expires at %s\n", vm.Name, vm.ExpiresAt.UTC().Format(time.RFC3339))
		return nil
	}
	return printVMs(opts.IO, opts.Now(), opts.Output, []api.VM{*vm}, vm)
}
