package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/vmdhq/vmd/pkg/client"
)

// maxTail mirrors the server's bound, so a bad --tail is a flag error.
const maxTail = 10000

// LogsOptions are the inputs of vmctl logs.
type LogsOptions struct {
	IO     *IOStreams
	Client func() (*client.Client, error)

	Name   string
	Follow bool
	Tail   int
}

// NewCmdLogs builds `vmctl logs NAME`.
func NewCmdLogs(f *Factory, runF func(context.Context, *LogsOptions) error) *cobra.Command {
	opts := &LogsOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print a virtual machine's serial console output",
		Long: `Print what the VM wrote to its serial port (kept across boots and vmd
restarts). With --tail only the last lines; with -f, keep printing what it
writes next until Ctrl-C or the VM is deleted.`,
		Example: `  vmctl logs web
  vmctl logs web --tail 50
  vmctl logs web -f`,
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: completeVMNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if opts.Tail < 0 || opts.Tail > maxTail {
				return flagErrorf("--tail must be between 0 and %d", maxTail)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return logsRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&opts.Follow, "follow", "f", false, "keep printing new output")
	fl.IntVar(&opts.Tail, "tail", 0, fmt.Sprintf("only the last N lines (at most %d; 0: all)", maxTail))
	return cmd
}

func logsRun(ctx context.Context, opts *LogsOptions) error {
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	body, err := c.Logs(ctx, opts.Name, opts.Tail, opts.Follow)
	if err != nil {
		return err
	}
	defer body.Close()
	if _, err := io.Copy(opts.IO.Out, body); err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("logs of vm %s: %w", opts.Name, err)
	}
	return nil
}
