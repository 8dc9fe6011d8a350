package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
)

// SnapshotOptions are the inputs of vmctl snapshot create|list|restore|delete.
type SnapshotOptions struct {
	IO     *IOStreams
	Client func() (*client.Client, error)
	Now    func() time.Time

	Action string // create, list, restore or delete
	VM     string
	Snap   string
	Memory bool
	Keep   int // -1: leave the VM's retention as it is
	Output string
}

// NewCmdSnapshot builds `vmctl snapshot create|list|restore|delete`.
func NewCmdSnapshot(f *Factory, runF func(context.Context, *SnapshotOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Create, list, restore and delete snapshots of a VM",
		Example: `  vmctl snapshot create web before-upgrade
  vmctl snapshot create web warm --memory --keep 5
  vmctl snapshot list web
  vmctl snapshot restore web before-upgrade
  vmctl snapshot delete web before-upgrade
  vmctl create web2 --from web@before-upgrade`,
		Args: noArgs,
	}
	sub := func(action, use, short string, nargs int, what string) (*cobra.Command, *SnapshotOptions) {
		opts := &SnapshotOptions{IO: f.IOStreams, Client: f.Client, Now: f.Now, Action: action, Keep: -1}
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  exactArgs(nargs, what),
			RunE: func(cmd *cobra.Command, args []string) error {
				opts.VM = args[0]
				if nargs > 1 {
					opts.Snap = args[1]
				}
				if cmd.Flags().Changed("keep") && opts.Keep < 0 {
					return flagErrorf("--keep must not be negative")
				}
				if runF != nil {
					return runF(cmd.Context(), opts)
				}
				return snapshotRun(cmd.Context(), opts)
			},
		}
		return c, opts
	}
	create, co := sub("create", "create NAME SNAPSHOT", "Snapshot a VM (running: disk only, or --memory)", 2, "NAME and SNAPSHOT")
	create.Flags().BoolVar(&co.Memory, "memory", false, "save the running VM's memory too: restore resumes there")
	create.Flags().IntVar(&co.Keep, "keep", -1, "keep at most this many snapshots of the VM from now on, deleting the oldest (0: no limit)")
	addOutputFlag(create, &co.Output)
	list, lo := sub("list", "list NAME", "List a VM's snapshots", 1, "NAME")
	addOutputFlag(list, &lo.Output)
	restore, ro := sub("restore", "restore NAME SNAPSHOT", "Put a VM back to a snapshot (a running VM restarts on it)", 2, "NAME and SNAPSHOT")
	addOutputFlag(restore, &ro.Output)
	del, _ := sub("delete", "delete NAME SNAPSHOT", "Delete a snapshot", 2, "NAME and SNAPSHOT")
	cmd.AddCommand(create, list, restore, del)
	return cmd
}

func snapshotRun(ctx context.Context, opts *SnapshotOptions) error {
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	switch opts.Action {
	case "create":
		req := api.CreateSnapshotRequest{Name: opts.Snap, Memory: opts.Memory}
		if opts.Keep >= 0 {
			req.Keep = &opts.Keep
		}
		sn, err := c.CreateSnapshot(ctx, opts.VM, req)
		if err != nil {
			return err
		}
		return printSnapshots(opts, []api.Snapshot{*sn}, sn)
	case "list":
		sns, err := c.ListSnapshots(ctx, opts.VM)
		if err != nil {
			return err
		}
		if len(sns) == 0 && opts.Output == formatTable {
			opts.IO.Infof("No snapshots of %s.\n", opts.VM)
			return nil
		}
		return printSnapshots(opts, sns, sns)
	case "restore":
		vm, err := c.RestoreSnapshot(ctx, opts.VM, opts.Snap)
		if err != nil {
			return err
		}
		return printVMs(opts.IO, opts.Now(), opts.Output, []api.VM{*vm}, vm)
	case "delete":
		if err := c.DeleteSnapshot(ctx, opts.VM, opts.Snap); err != nil {
			return err
		}
		if opts.IO.ErrTTY {
			opts.IO.Infof("Deleted snapshot %s of %s.\n", opts.Snap, opts.VM)
		}
		return nil
	}
	return fmt.Errorf("snapshot: unknown action %q", opts.Action)
}

func printSnapshots(opts *SnapshotOptions, sns []api.Snapshot, data any) error {
	ios := opts.IO
	if isTable, err := printObjects(ios, opts.Output, data, sns, func(s api.Snapshot) string { return s.Name }); !isTable {
		return err
	}
	t := &table{header: []string{"NAME", "CONSISTENCY", "MEMORY", "SIZE", createdHeader(ios)}}
	now := opts.Now()
	for _, s := range sns {
		mem := "no"
		if s.Memory {
			mem = "yes"
		}
		t.add(plain(s.Name, s.Consistency, mem, fmt.Sprintf("%dGB", s.SizeGB), timeCell(ios, now, s.CreatedAt))...)
	}
	return t.render(ios)
}
