package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
)

// CreateOptions are the inputs of vmctl create.
type CreateOptions struct {
	IO     *IOStreams
	Client func() (*client.Client, error)
	Now    func() time.Time

	Name         string
	Template     string
	CPU          int
	MemoryMB     int
	DiskGB       int
	UserDataFile string
	From         string // NAME or NAME@SNAPSHOT: a clone
	SSHKeyFiles  []string
	Network      string // "" lets the server choose (nat)
	Wait         bool
	Timeout      time.Duration
	Interval     time.Duration
	Output       string
	TTL          string // "30m": deleted that long after creation
	IdleStop     string // "30m": stopped after that long unused
	// WaitReady: --wait=ready, wait for the guest to be ready too.
	WaitReady bool
}

// NewCmdCreate builds `vmctl create NAME --template T`.
func NewCmdCreate(f *Factory, runF func(context.Context, *CreateOptions) error) *cobra.Command {
	opts := &CreateOptions{IO: f.IOStreams, Client: f.Client, Now: f.Now, Interval: time.Second}
	cmd := &cobra.Command{
		Use:   "create NAME (--template TEMPLATE | --from VM[@SNAPSHOT])",
		Short: "Create a virtual machine",
		Example: `  vmctl create web --template tiny
  vmctl create db --template debian --cpu 2 --memory 2048 --disk 20 --userdata cloud-init.yaml --wait
  vmctl create web2 --from web@before-upgrade`,
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if opts.Template == "" && opts.From == "" {
				return flagErrorf("--template is required (or --from VM[@SNAPSHOT] for a clone)")
			}
			if opts.CPU < 0 || opts.MemoryMB < 0 || opts.DiskGB < 0 {
				return flagErrorf("--cpu, --memory and --disk must not be negative")
			}
			if opts.Timeout <= 0 {
				return flagErrorf("--timeout must be positive")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return createRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.Template, "template", "t", "", "template (base image) to create the VM from")
	fl.IntVar(&opts.CPU, "cpu", 0, fmt.Sprintf("virtual CPUs (server default %d)", api.DefaultCPU))
	fl.IntVar(&opts.MemoryMB, "memory", 0, fmt.Sprintf("memory in MB (server default %d)", api.DefaultMemoryMB))
	fl.IntVar(&opts.DiskGB, "disk", 0, fmt.Sprintf("disk size in GB (server default %d)", api.DefaultDiskGB))
	fl.StringVar(&opts.UserDataFile, "userdata", "", "cloud-init user data file ('-' for stdin)")
	fl.Var(&waitFlag{wait: &opts.Wait, ready: &opts.WaitReady}, "wait", "wait until the VM is running (--wait=ready: and its guest is ready)")
	fl.Lookup("wait").NoOptDefVal = "running"
	fl.DurationVar(&opts.Timeout, "timeout", 5*time.Minute, "how long --wait waits")
	fl.StringVar(&opts.TTL, "ttl", "", "delete the VM this long after creation, e.g. 30m (default: the operator's, if any)")
	fl.StringVar(&opts.IdleStop, "idle-stop", "", "stop the VM after this long without a console, exec, port-forward or API action, e.g. 30m")
	fl.StringVar(&opts.From, "from", "", "clone VM[@SNAPSHOT]: the disk starts as that VM's (or snapshot's); sizes default to its")
	fl.StringArrayVar(&opts.SSHKeyFiles, "ssh-key", nil, "public key file (.pub) for this VM besides your stored keys (repeatable)")
	networks := []string{api.NetworkNAT, api.NetworkNone}
	fl.Var(&enumValue{p: &opts.Network, allowed: networks}, "network",
		"guest network: "+strings.Join(networks, "|")+" (server default "+api.NetworkNAT+")")
	_ = cmd.RegisterFlagCompletionFunc("network", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return networks, cobra.ShellCompDirectiveNoFileComp
	})
	addOutputFlag(cmd, &opts.Output)
	_ = cmd.RegisterFlagCompletionFunc("template", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		c, err := opts.Client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ts, err := c.Templates(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		names := make([]string, len(ts))
		for i, t := range ts {
			names[i] = t.Name
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

func createRun(ctx context.Context, opts *CreateOptions) error {
	req := api.CreateVMRequest{Name: opts.Name, Template: opts.Template, CPU: opts.CPU, MemoryMB: opts.MemoryMB, DiskGB: opts.DiskGB,
		TTL: opts.TTL, IdleStop: opts.IdleStop, From: opts.From, Network: opts.Network}
	if opts.UserDataFile != "" {
		var (
			b   []byte
			err error
		)
		if opts.UserDataFile == "-" {
			b, err = io.ReadAll(opts.IO.In)
		} else {
			b, err = os.ReadFile(opts.UserDataFile)
		}
		if err != nil {
			return fmt.Errorf("read userdata: %w", err)
		}
		req.UserData = string(b)
	}
	for _, f := range opts.SSHKeyFiles {
		keys, err := readKeyFile(opts.IO, f)
		if err != nil {
			return err
		}
		req.SSHKeys = append(req.SSHKeys, keys...)
	}
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	vm, err := c.CreateVM(ctx, req)
	if err != nil {
		return err
	}
	if opts.Wait {
		if opts.IO.ErrTTY {
			opts.IO.Infof("Waiting for vm %s to be running...\n", vm.Name)
		}
		ref := vm.ID
		if ref == "" {
			ref = vm.Name
		}
		got, werr := waitForVM(ctx, c, ref, waitCondition{state: api.StateRunning, ready: opts.WaitReady}, opts.Timeout, opts.Interval)
		if got != nil {
			vm = got
		}
		if werr != nil {
			return werr
		}
	}
	return printVMs(opts.IO, opts.Now(), opts.Output, []api.VM{*vm}, vm)
}

// ListOptions are the inputs of vmctl list.
type ListOptions struct {
	IO     *IOStreams
	Client func() (*client.Client, error)
	Now    func() time.Time

	All    bool
	Watch  bool
	Output string
}

// NewCmdList builds `vmctl list`.
func NewCmdList(f *Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{IO: f.IOStreams, Client: f.Client, Now: f.Now}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List virtual machines",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return listRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.All, "all", "A", false, "list every user's VMs (admins only)")
	cmd.Flags().BoolVarP(&opts.Watch, "watch", "w", false, "after the list, print a line per change until interrupted")
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func listRun(ctx context.Context, opts *ListOptions) error {
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	if opts.Watch {
		return watchVMs(ctx, opts.IO, opts.Now, opts.Output, c, watchTarget{all: opts.All})
	}
	vms, err := c.ListVMs(ctx, opts.All)
	if err != nil {
		return err
	}
	if len(vms) == 0 && (opts.Output == formatTable || opts.Output == formatWide) {
		if opts.IO.ErrTTY || opts.IO.OutTTY {
			opts.IO.Infof("No VMs found.\n")
		}
		return nil
	}
	return printVMs(opts.IO, opts.Now(), opts.Output, vms, vms)
}

// GetOptions are the inputs of vmctl get.
type GetOptions struct {
	IO     *IOStreams
	Client func() (*client.Client, error)
	Now    func() time.Time

	Name   string
	Watch  bool
	Output string
}

// NewCmdGet builds `vmctl get NAME`.
func NewCmdGet(f *Factory, runF func(context.Context, *GetOptions) error) *cobra.Command {
	opts := &GetOptions{IO: f.IOStreams, Client: f.Client, Now: f.Now}
	cmd := &cobra.Command{
		Use:               "get NAME",
		Short:             "Show one virtual machine by name or id",
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: completeVMNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return getRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Watch, "watch", "w", false, "after the VM, print a line per change until interrupted or deleted")
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func getRun(ctx context.Context, opts *GetOptions) error {
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	if opts.Watch {
		return watchVMs(ctx, opts.IO, opts.Now, opts.Output, c, watchTarget{ref: opts.Name})
	}
	vm, err := c.GetVM(ctx, opts.Name)
	if err != nil {
		return err
	}
	return printVMs(opts.IO, opts.Now(), opts.Output, []api.VM{*vm}, vm)
}

// PowerOptions are the inputs of vmctl start and stop.
type PowerOptions struct {
	IO     *IOStreams
	Client func() (*client.Client, error)

	Name  string
	Force bool
}

// NewCmdStart builds `vmctl start NAME`.
func NewCmdStart(f *Factory, runF func(context.Context, *PowerOptions) error) *cobra.Command {
	opts := &PowerOptions{IO: f.IOStreams, Client: f.Client}
	return &cobra.Command{
		Use:               "start NAME",
		Short:             "Start a virtual machine",
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: completeVMNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return startRun(cmd.Context(), opts)
		},
	}
}

func startRun(ctx context.Context, opts *PowerOptions) error {
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	vm, err := c.StartVM(ctx, opts.Name)
	if err != nil {
		return err
	}
	opts.IO.Infof("vm %s: start requested (state %s)\n", vm.Name, vm.State)
	return nil
}

// NewCmdStop builds `vmctl stop NAME [--force]`.
func NewCmdStop(f *Factory, runF func(context.Context, *PowerOptions) error) *cobra.Command {
	opts := &PowerOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:               "stop NAME",
		Short:             "Stop a virtual machine (ACPI power-down; --force powers off)",
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: completeVMNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return stopRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Force, "force", "f", false, "power off at once instead of asking the guest")
	return cmd
}

func stopRun(ctx context.Context, opts *PowerOptions) error {
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	vm, err := c.StopVM(ctx, opts.Name, opts.Force)
	if err != nil {
		return err
	}
	opts.IO.Infof("vm %s: stop requested (state %s)\n", vm.Name, vm.State)
	return nil
}

// DeleteOptions are the inputs of vmctl delete.
type DeleteOptions struct {
	IO     *IOStreams
	Client func() (*client.Client, error)

	Name     string
	Yes      bool
	Wait     bool
	Timeout  time.Duration
	Interval time.Duration
}

// NewCmdDelete builds `vmctl delete NAME [--yes]`.
func NewCmdDelete(f *Factory, runF func(context.Context, *DeleteOptions) error) *cobra.Command {
	opts := &DeleteOptions{IO: f.IOStreams, Client: f.Client, Interval: time.Second}
	cmd := &cobra.Command{
		Use:               "delete NAME",
		Aliases:           []string{"rm"},
		Short:             "Delete a virtual machine and its disk",
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: completeVMNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if !opts.Yes && !opts.IO.CanPrompt() {
				return flagErrorf("--yes is required when not running interactively")
			}
			if opts.Timeout <= 0 {
				return flagErrorf("--timeout must be positive")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return deleteRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&opts.Wait, "wait", false, "wait until the VM and its disk are gone")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 5*time.Minute, "how long --wait waits (exit 6)")
	return cmd
}

func deleteRun(ctx context.Context, opts *DeleteOptions) error {
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	if !opts.Yes {
		ok, err := opts.IO.Confirm(fmt.Sprintf("Delete vm %s and its disk?", opts.Name))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("delete of vm %s cancelled", opts.Name)
		}
	}
	vm, err := c.DeleteVM(ctx, opts.Name)
	if err != nil {
		return err
	}
	if !opts.Wait {
		opts.IO.Infof("vm %s: delete requested\n", opts.Name)
		return nil
	}
	// By id: the name may be taken again as soon as the VM is gone.
	ref := opts.Name
	if vm != nil && vm.ID != "" {
		ref = vm.ID
	}
	if _, err := waitForVM(ctx, c, ref, waitCondition{deleted: true}, opts.Timeout, opts.Interval); err != nil {
		return err
	}
	opts.IO.Infof("vm %s: deleted\n", opts.Name)
	return nil
}

// waitFlag is create's --wait: bare (or =running, =true) waits for
// running, =ready for the guest being ready as well, =false not at all.
type waitFlag struct{ wait, ready *bool }

func (w *waitFlag) String() string {
	switch {
	case w.wait == nil || !*w.wait:
		return ""
	case *w.ready:
		return "ready"
	}
	return "running"
}

func (w *waitFlag) Set(s string) error {
	switch s {
	case "running", "true":
		*w.wait, *w.ready = true, false
	case "ready":
		*w.wait, *w.ready = true, true
	case "false":
		*w.wait, *w.ready = false, false
	default:
		return fmt.Errorf("--wait takes running or ready, got %q", s)
	}
	return nil
}

func (w *waitFlag) Type() string { return "running|ready" }
