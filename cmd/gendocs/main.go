// Command gendocs writes vmctl's shell completion scripts and the man pages
// of vmctl and vmd from their cobra command trees. `make completions` and
// `make man` run it; its test fails when the committed copies are stale.
//
//	go run ./cmd/gendocs -completions completions -man docs/man
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/vmdhq/vmd/pkg/cli"
	"github.com/vmdhq/vmd/pkg/daemon"
)

// manDate is the date in every man page's header. It is a constant, not
// the time of generation, so the pages are reproducible and the staleness
// test can compare them byte for byte; bump it when the pages change much.
var manDate = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)

func main() {
	completions := flag.String("completions", "", "directory to write vmctl's completion scripts to (vmctl.bash, _vmctl, vmctl.fish, vmctl.ps1)")
	man := flag.String("man", "", "directory to write the man pages of vmctl and vmd to")
	flag.Parse()
	if *completions == "" && *man == "" {
		fmt.Fprintln(os.Stderr, "gendocs: nothing to do: give -completions DIR and/or -man DIR")
		os.Exit(2)
	}
	if *completions != "" {
		if err := writeCompletions(*completions); err != nil {
			fmt.Fprintln(os.Stderr, "gendocs:", err)
			os.Exit(1)
		}
	}
	if *man != "" {
		if err := writeMan(*man); err != nil {
			fmt.Fprintln(os.Stderr, "gendocs:", err)
			os.Exit(1)
		}
	}
}

// vmctlRoot is vmctl's command tree with the completion command cobra
// otherwise adds only when it executes, so the man pages list it too.
func vmctlRoot() (*cobra.Command, error) {
	ios := &cli.IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard}
	root, err := cli.NewCmdRoot(ios, "")
	if err != nil {
		return nil, fmt.Errorf("build vmctl commands: %w", err)
	}
	root.InitDefaultCompletionCmd()
	root.DisableAutoGenTag = true
	return root, nil
}

func vmdRoot() *cobra.Command {
	root := daemon.NewRootCmd(strings.NewReader(""), io.Discard, io.Discard)
	root.InitDefaultCompletionCmd()
	root.DisableAutoGenTag = true
	return root
}

// completionFiles maps each file name to the generator of its script.
var completionFiles = []struct {
	name string
	gen  func(*cobra.Command, io.Writer) error
}{
	{"vmctl.bash", func(c *cobra.Command, w io.Writer) error { return c.GenBashCompletionV2(w, true) }},
	{"_vmctl", func(c *cobra.Command, w io.Writer) error { return c.GenZshCompletion(w) }},
	{"vmctl.fish", func(c *cobra.Command, w io.Writer) error { return c.GenFishCompletion(w, true) }},
	{"vmctl.ps1", func(c *cobra.Command, w io.Writer) error { return c.GenPowerShellCompletionWithDesc(w) }},
}

func writeCompletions(dir string) error {
	root, err := vmctlRoot()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for _, cf := range completionFiles {
		var buf bytes.Buffer
		if err := cf.gen(root, &buf); err != nil {
			return fmt.Errorf("generate %s: %w", cf.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, cf.name), buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", cf.name, err)
		}
	}
	return nil
}

func writeMan(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	// Pages of commands that no longer exist must not linger.
	old, err := filepath.Glob(filepath.Join(dir, "*.1"))
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, p := range old {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("remove stale page: %w", err)
		}
	}
	vmctl, err := vmctlRoot()
	if err != nil {
		return err
	}
	for _, root := range []*cobra.Command{vmctl, vmdRoot()} {
		header := &doc.GenManHeader{Section: "1", Date: &manDate, Source: "vmd", Manual: "vmd manual"}
		if err := doc.GenManTree(root, header, dir); err != nil {
			return fmt.Errorf("generate man pages of %s: %w", root.Name(), err)
		}
	}
	return nil
}
