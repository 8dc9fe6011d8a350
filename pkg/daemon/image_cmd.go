package daemon

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmdhq/vmd/pkg/image"
)

func newImageCmd(st *settings, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Manage templates (base images) of this node"}
	var props image.Props
	imp := &cobra.Command{
		Use:   "import NAME FILE",
		Short: "Register a qcow2 file as template NAME (copied, checksummed, read-only)",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			return withApp(c.Context(), st, stderr, func(a *app) error {
				t, err := a.catalog.Import(c.Context(), args[0], args[1])
				if err != nil {
					return err
				}
				// Flags given: they replace the built-in properties of the name.
				if c.Flags().Changed("ssh-user") || c.Flags().Changed("min-memory-mb") || c.Flags().Changed("ready-line") {
					if strings.ContainsAny(props.ReadyLine, "\r\n") {
						return usageError{errors.New("--ready-line: one line only")}
					}
					if err := a.catalog.SetProps(t.Name, props); err != nil {
						return err
					}
				}
				fmt.Fprintf(stdout, "imported template %s (%d bytes, sha256 %s)\n", t.Name, t.SizeBytes, t.SHA256)
				return nil
			})
		},
	}
	imp.Flags().StringVar(&props.ReadyLine, "ready-line", "", `serial line that makes a guest without a guest agent ready (default "vmd-tiny: booted")`)
	imp.Flags().StringVar(&props.SSHUser, "ssh-user", "", "the template's default login user, shown in GET /templates (built in: root for tiny, debian for debian-12)")
	imp.Flags().IntVar(&props.MinMemoryMB, "min-memory-mb", 0, "least memory a VM of the template gets (built in: 1024 for debian-12)")
	cmd.AddCommand(imp, &cobra.Command{
		Use:   "list",
		Short: "List templates",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return withApp(c.Context(), st, stderr, func(a *app) error {
				ts, err := a.catalog.List(c.Context())
				if err != nil {
					return err
				}
				fmt.Fprintln(stdout, "NAME\tSIZE_BYTES\tSHA256")
				for _, t := range ts {
					fmt.Fprintf(stdout, "%s\t%d\t%s\n", t.Name, t.SizeBytes, t.SHA256)
				}
				return nil
			})
		},
	})
	return cmd
}
