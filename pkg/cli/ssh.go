package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmdhq/vmd/pkg/client"
)

// SSHOptions are the inputs of vmctl ssh.
type SSHOptions struct {
	IO         *IOStreams
	Client     func() (*client.Client, error)
	Target     func() (Target, error)
	ConfigPath func() string
	// Exec runs ssh; nil runs the system's (tests record the argv instead).
	Exec func(ctx context.Context, argv, env []string, ios *IOStreams) error

	Name    string
	User    string
	KeyFile string
	Port    int
	Command []string
}

// NewCmdSSH builds `vmctl ssh NAME [-l USER] [-i KEY] [-- CMD...]`.
func NewCmdSSH(f *Factory, runF func(context.Context, *SSHOptions) error) *cobra.Command {
	opts := &SSHOptions{IO: f.IOStreams, Client: f.Client, Target: f.Target, ConfigPath: f.ConfigPath}
	cmd := &cobra.Command{
		Use:   "ssh NAME [-l USER] [-i KEY] [-- COMMAND [ARGS...]]",
		Short: "Open an SSH session to a virtual machine through vmd",
		Long: `Run the system's ssh to the VM, carried by "vmctl port-forward --stdio" as its
ProxyCommand, so the guest needs no address reachable from here. vmctl keeps a
known_hosts file per VM beside its config (known_hosts.d/<vm-id>), filled with
the host keys the guest reported (or, before it has, learned on the first
connection). Without -l it logs in as the VM template's ssh_user (root on tiny,
debian on debian-12; root when the template names none). The exit status is
the remote command's (or ssh's own 255).`,
		Example: `  vmctl ssh web
  vmctl ssh web -l debian -i ~/.ssh/id_ed25519
  vmctl ssh web -- uname -a`,
		ValidArgsFunction: completeVMNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			switch {
			case len(args) == 0 || dash == 0:
				return flagErrorf("NAME is required")
			case dash < 0 && len(args) > 1, dash > 1:
				return flagErrorf("one NAME; put the remote command after --")
			}
			opts.Name = args[0]
			if dash > 0 {
				opts.Command = args[dash:]
			}
			if opts.Port < 1 || opts.Port > 65535 {
				return flagErrorf("--port must be between 1 and 65535")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return sshRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.User, "login", "l", "", "user to log in as in the guest (default: the template's ssh_user, else root)")
	fl.StringVarP(&opts.KeyFile, "identity", "i", "", "private key file for ssh (default: ssh's own)")
	fl.IntVarP(&opts.Port, "port", "p", 22, "guest port of the SSH server")
	return cmd
}

// shellQuote quotes s for the sh -c that runs ssh's ProxyCommand; ssh
// expands % first, so those are doubled.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, "%", "%%"), "'", `'\''`) + "'"
}

// sshArgs is ssh's argv for vm id: the ProxyCommand runs this vmctl again
// (its server, token and context come through the environment, so the
// token is in no process's argv).
func sshArgs(self, id, knownHosts string, pinned bool, opts *SSHOptions) []string {
	// ssh runs it as "exec <command>" through sh.
	proxy := fmt.Sprintf("%s port-forward %s --stdio %d", shellQuote(self), shellQuote(id), opts.Port)
	a := []string{"ssh",
		"-o", "ProxyCommand=" + proxy,
		"-o", "UserKnownHostsFile=" + knownHosts,
		"-o", "StrictHostKeyChecking=" + map[bool]string{true: "yes", false: "accept-new"}[pinned],
		"-o", "HostKeyAlias=" + id,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-l", opts.User,
	}
	if opts.KeyFile != "" {
		a = append(a, "-i", opts.KeyFile, "-o", "IdentitiesOnly=yes")
	}
	a = append(a, id)
	if len(opts.Command) > 0 {
		a = append(a, "--")
		a = append(a, opts.Command...)
	}
	return a
}

func sshRun(ctx context.Context, opts *SSHOptions) error {
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	vm, err := c.GetVM(ctx, opts.Name)
	if err != nil {
		return err
	}
	t, err := opts.Target()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find vmctl's own path for the ProxyCommand: %w", err)
	}
	dir := filepath.Join(filepath.Dir(opts.ConfigPath()), "known_hosts.d")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("known hosts: %w", err)
	}
	env := append(os.Environ(), "VMCTL_SERVER="+t.Server, "VMCTL_TOKEN="+t.Token, "VMCTL_CONFIG="+opts.ConfigPath())
	if t.Context != "" {
		env = append(env, "VMCTL_CONTEXT="+t.Context)
	}
	run := opts.Exec
	if run == nil {
		run = execSSH
	}
	if opts.User == "" {
		opts.User = templateUser(ctx, c, vm.Template)
	}
	known := filepath.Join(dir, vm.ID)
	// The host keys the guest reported on its console pin the connection;
	// without them the first connection's key is learned (accept-new).
	keys := vm.SSHHostKeys
	if len(keys) > 0 {
		if known, err = writeKnownHosts(filepath.Dir(opts.ConfigPath()), vm.ID, keys); err != nil {
			return err
		}
	}
	return run(ctx, sshArgs(self, vm.ID, known, len(keys) > 0, opts), env, opts.IO)
}

// templateUser is template's ssh_user as GET /templates names it, root
// when it names none (or the list cannot be had: ssh then says who it tried).
func templateUser(ctx context.Context, c *client.Client, template string) string {
	ts, err := c.Templates(ctx)
	if err == nil {
		for _, t := range ts {
			if t.Name == template && t.SSHUser != "" {
				return t.SSHUser
			}
		}
	}
	return "root"
}

// execSSH runs ssh on the terminal and turns its exit status into vmctl's.
func execSSH(ctx context.Context, argv, env []string, ios *IOStreams) error {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("vmctl ssh needs the ssh client (openssh-client): %w", err)
	}
	cmd := exec.CommandContext(ctx, path, argv[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = ios.In, ios.Out, ios.ErrOut
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		return &ExitStatusError{Code: ee.ExitCode()}
	}
	if err != nil {
		return fmt.Errorf("run ssh: %w", err)
	}
	return nil
}
