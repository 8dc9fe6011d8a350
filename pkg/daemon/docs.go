package daemon

import (
	"io"

	"github.com/spf13/cobra"
)

// NewRootCmd returns vmd's command tree writing to the given streams, for
// generators of man pages and completions; running vmd goes through Main.
func NewRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	return newRootCmd(stdin, stdout, stderr)
}
