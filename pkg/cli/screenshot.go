package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/vmdhq/vmd/pkg/client"
)

// ScreenshotOptions are the inputs of vmctl screenshot.
type ScreenshotOptions struct {
	IO     *IOStreams
	Client func() (*client.Client, error)

	Name   string
	Output string // a file, or "-" for stdout
}

// NewCmdScreenshot builds `vmctl screenshot NAME [-o FILE]`.
func NewCmdScreenshot(f *Factory, runF func(context.Context, *ScreenshotOptions) error) *cobra.Command {
	opts := &ScreenshotOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "screenshot NAME [-o FILE]",
		Short: "Save a PNG of a running virtual machine's screen",
		Long: `Save a PNG of the VM's screen, at the guest's resolution.

Without -o (or with -o -) the PNG goes to standard output, which must then
not be a terminal.`,
		Example: `  vmctl screenshot web -o web.png
  vmctl screenshot web | display`,
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: completeVMNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if opts.Output == "" {
				opts.Output = "-"
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return screenshotRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "", "file to write the PNG to (default: standard output, unless a terminal)")
	return cmd
}

func screenshotRun(ctx context.Context, opts *ScreenshotOptions) error {
	if opts.Output == "-" && opts.IO.OutTTY {
		return flagErrorf("standard output is a terminal, not the place for a PNG: give -o FILE, or pipe it")
	}
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	png, err := c.Screenshot(ctx, opts.Name)
	if err != nil {
		return err
	}
	if opts.Output == "-" {
		_, err := opts.IO.Out.Write(png)
		return err
	}
	if err := os.WriteFile(opts.Output, png, 0o644); err != nil {
		return fmt.Errorf("write screenshot: %w", err)
	}
	opts.IO.Infof("Saved the screen of vm %s to %s (%d bytes).\n", opts.Name, opts.Output, len(png))
	return nil
}
