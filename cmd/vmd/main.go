// Command vmd is the server: accounts, VMs, consoles. See `vmd --help`.
package main

import (
	"os"

	"github.com/vmdhq/vmd/pkg/daemon"
)

func main() {
	os.Exit(daemon.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
