// Command vmctl is the command-line client of vmd; the commands live in pkg/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmdhq/vmd/pkg/cli"
	"github.com/vmdhq/vmd/pkg/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.System(), version.Version)
	stop()
	os.Exit(code)
}
