package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
	"github.com/vmdhq/vmd/pkg/sshkey"
)

// SSHKeyOptions are the inputs of vmctl ssh-key add|list|delete.
type SSHKeyOptions struct {
	IO     *IOStreams
	Client func() (*client.Client, error)
	Now    func() time.Time

	Name   string // add: the key's name; delete: which key
	File   string // add: the public key file, "-" for stdin
	Output string
}

// NewCmdSSHKey builds `vmctl ssh-key` and its subcommands.
func NewCmdSSHKey(f *Factory, runF func(context.Context, string, *SSHKeyOptions) error) *cobra.Command {
	run := func(verb string, opts *SSHKeyOptions) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			switch verb {
			case "add":
				opts.File = args[0]
			case "delete":
				opts.Name = args[0]
			}
			if runF != nil {
				return runF(cmd.Context(), verb, opts)
			}
			switch verb {
			case "add":
				return sshKeyAddRun(cmd.Context(), opts)
			case "delete":
				return sshKeyDeleteRun(cmd.Context(), opts)
			}
			return sshKeyListRun(cmd.Context(), opts)
		}
	}
	newOpts := func() *SSHKeyOptions { return &SSHKeyOptions{IO: f.IOStreams, Client: f.Client, Now: f.Now} }
	cmd := &cobra.Command{
		Use:     "ssh-key",
		Aliases: []string{"ssh-keys"},
		Short:   "Manage the SSH public keys new VMs are given",
		Long: `Your SSH public keys. Every VM you create afterwards gets them, through
its cloud-init seed (meta-data public-keys), for the template's default user
(root on tiny, debian on debian-12). A VM keeps the keys it was created with.`,
	}
	addOpts := newOpts()
	add := &cobra.Command{
		Use:     "add [--name NAME] FILE|-",
		Short:   "Add a public key (an id_*.pub file, or '-' for stdin)",
		Example: "  vmctl ssh-key add ~/.ssh/id_ed25519.pub\n  vmctl ssh-key add --name ci - < ci.pub",
		Args:    exactArgs(1, "FILE"),
		RunE:    run("add", addOpts),
	}
	add.Flags().StringVar(&addOpts.Name, "name", "", "name of the key (default: its comment)")
	addOutputFlag(add, &addOpts.Output)
	listOpts := newOpts()
	list := &cobra.Command{Use: "list", Aliases: []string{"ls"}, Short: "List your public keys", Args: noArgs,
		RunE: run("list", listOpts)}
	addOutputFlag(list, &listOpts.Output)
	delOpts := newOpts()
	del := &cobra.Command{Use: "delete NAME", Aliases: []string{"rm"}, Short: "Delete one of your public keys",
		Args: exactArgs(1, "NAME"), RunE: run("delete", delOpts)}
	cmd.AddCommand(add, list, del)
	return cmd
}

func sshKeyAddRun(ctx context.Context, opts *SSHKeyOptions) error {
	keys, err := readKeyFile(opts.IO, opts.File)
	if err != nil {
		return err
	}
	if len(keys) != 1 {
		return flagErrorf("%s holds %d keys; add one key at a time", opts.File, len(keys))
	}
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	k, err := c.AddSSHKey(ctx, api.SSHKeyRequest{Name: opts.Name, Key: keys[0]})
	if err != nil {
		return err
	}
	if opts.Output == "" {
		opts.IO.Infof("Added ssh key %s (%s).\n", k.Name, k.Fingerprint)
		return nil
	}
	return printSSHKeys(opts, []api.SSHKey{*k}, k)
}

func sshKeyListRun(ctx context.Context, opts *SSHKeyOptions) error {
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	ks, err := c.ListSSHKeys(ctx)
	if err != nil {
		return err
	}
	if len(ks) == 0 && (opts.Output == "" || opts.Output == formatWide) {
		opts.IO.Infof("No ssh keys found. Add one with 'vmctl ssh-key add ~/.ssh/id_ed25519.pub'.\n")
		return nil
	}
	return printSSHKeys(opts, ks, ks)
}

func sshKeyDeleteRun(ctx context.Context, opts *SSHKeyOptions) error {
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	if err := c.DeleteSSHKey(ctx, opts.Name); err != nil {
		return err
	}
	opts.IO.Infof("Deleted ssh key %s.\n", opts.Name)
	return nil
}

func printSSHKeys(opts *SSHKeyOptions, ks []api.SSHKey, data any) error {
	ios := opts.IO
	if isTable, err := printObjects(ios, opts.Output, data, ks, func(k api.SSHKey) string { return k.Name }); !isTable {
		return err
	}
	t := &table{header: []string{"NAME", "TYPE", "FINGERPRINT", createdHeader(ios)}}
	now := opts.Now()
	for _, k := range ks {
		typ, _, _ := strings.Cut(k.Key, " ")
		t.add(plain(k.Name, typ, k.Fingerprint, timeCell(ios, now, k.CreatedAt))...)
	}
	return t.render(ios)
}

// maxKeyFile bounds what is read of a key file: a .pub is under 3 KB.
const maxKeyFile = 64 << 10

// readKeyFile returns the keys of a public key file ("-": stdin), one per
// non-empty line that is not a comment; the server checks each.
func readKeyFile(ios *IOStreams, name string) ([]string, error) {
	var r io.Reader
	if name == "-" {
		r = ios.In
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("read ssh key: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read ssh key %s: %w", name, err)
	}
	if len(b) > maxKeyFile {
		return nil, flagErrorf("%s is over %d KiB: not a public key file", name, maxKeyFile>>10)
	}
	if bytes.Contains(b, []byte("PRIVATE KEY")) {
		return nil, flagErrorf("%s is a private key: give the .pub file", name)
	}
	var keys []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxKeyFile+1)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			keys = append(keys, l)
		}
	}
	if len(keys) == 0 {
		return nil, flagErrorf("%s holds no public key", name)
	}
	return keys, nil
}

// writeKnownHosts writes the host keys a VM's guest reported to
// <dir>/known_hosts.d/<vm-id>, one "<vm-id> <key>" line each, so ssh
// run with HostKeyAlias=<vm-id> and UserKnownHostsFile=<path> checks the
// guest's key on the first connection already. dir is vmctl's config
// directory. The file is replaced whole (written beside, then renamed).
// With no keys it removes the file: the guest has not reported (yet).
func writeKnownHosts(dir, vmID string, keys []string) (string, error) {
	if vmID == "" || strings.ContainsAny(vmID, "/\\ \t\n\r*?!,[]") || strings.HasPrefix(vmID, ".") {
		return "", fmt.Errorf("known_hosts: bad vm id %q", vmID)
	}
	kd := filepath.Join(dir, "known_hosts.d")
	p := filepath.Join(kd, vmID)
	if len(keys) == 0 {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return "", fmt.Errorf("known_hosts of %s: %w", vmID, err)
		}
		return p, nil
	}
	var b strings.Builder
	for _, k := range keys {
		// Parsed and re-marshalled: nothing but "TYPE BASE64" (no marker,
		// no second host pattern, no comment) reaches the file.
		pk, err := sshkey.Parse(k)
		if err != nil {
			return "", fmt.Errorf("known_hosts of %s: malformed host key from the server: %w", vmID, err)
		}
		fmt.Fprintf(&b, "%s %s\n", vmID, pk.Authorized)
	}
	if err := os.MkdirAll(kd, 0o700); err != nil {
		return "", fmt.Errorf("known_hosts of %s: %w", vmID, err)
	}
	tmp, err := os.CreateTemp(kd, "."+vmID+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("known_hosts of %s: %w", vmID, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(b.String()); err != nil {
		tmp.Close()
		return "", fmt.Errorf("known_hosts of %s: %w", vmID, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("known_hosts of %s: %w", vmID, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", fmt.Errorf("known_hosts of %s: %w", vmID, err)
	}
	return p, nil
}
