package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
)

// ShellOptions are the inputs of vmctl shell.
type ShellOptions struct {
	IO     *IOStreams
	Client func() (*client.Client, error)

	Name    string
	Timeout time.Duration
}

// NewCmdShell builds `vmctl shell NAME [--timeout D]`.
func NewCmdShell(f *Factory, runF func(context.Context, *ShellOptions) error) *cobra.Command {
	opts := &ShellOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "shell NAME [--timeout D]",
		Short: "Run shell commands in a VM line by line through its guest agent",
		Long: `Run shell commands in a VM line by line through its guest agent, without a
network: each line you type runs as one guest exec of the guest's /bin/sh,
in the directory the previous line left (cd carries over, variables do not),
and its output (stderr merged into stdout) is printed once it has ended.
There is no terminal in the guest: no editors, pagers, job control or
prompts that wait for input. A line still running after --timeout is killed
in the guest; Ctrl-C kills the running line. "exit" or Ctrl-D ends the
shell. For a real terminal use 'vmctl ssh NAME' (guests with a network) or
'vmctl console NAME --serial'.`,
		Example: `  vmctl shell web
  printf 'cd /etc\nls\n' | vmctl shell web`,
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: completeVMNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if opts.Timeout <= 0 || opts.Timeout > time.Hour {
				return flagErrorf("--timeout must be above 0 and at most 1h")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return shellRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 5*time.Minute, "kill a line's command in the guest after this long")
	return cmd
}

// shellScript runs one line ($2) in directory $1 (the agent's own when
// empty or gone), stderr merged into stdout, then reports the directory it
// ended in on stderr after shellCwdMark, and exits with the line's status.
const shellScript = `[ -n "$1" ] && { cd "$1" 2>/dev/null || cd /; }
{ eval "$2"; } 2>&1
s=$?
printf '` + "\\036" + `vmd-cwd:%s' "$PWD" >&2
exit $s`

const shellCwdMark = "\x1evmd-cwd:"

// shellLine is the exec request of one line typed in directory cwd.
func shellLine(line, cwd string, timeout time.Duration) api.ExecRequest {
	return api.ExecRequest{Command: []string{"/bin/sh", "-c", shellScript, "sh", cwd, line}, Timeout: timeout.String()}
}

// splitCwd takes the directory report off stderr.
func splitCwd(stderr []byte) (rest []byte, cwd string, ok bool) {
	i := bytes.LastIndex(stderr, []byte(shellCwdMark))
	if i < 0 {
		return stderr, "", false
	}
	return stderr[:i], string(stderr[i+len(shellCwdMark):]), true
}

func shellRun(ctx context.Context, opts *ShellOptions) error {
	ctx, stop := withoutInterrupt(ctx)
	defer stop()
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	ios := opts.IO
	// The first line finds the agent's directory and fails now, with exec's
	// errors, when there is no agent.
	cwd := ""
	if _, cwd, err = shellExec(ctx, c, opts, ":", ""); err != nil {
		return err
	}
	tty := ios.CanPrompt()
	if tty {
		fmt.Fprintf(ios.ErrOut, "Shell in vm %s through its guest agent: one command per line, no terminal in the guest.\n"+
			"\"exit\" or Ctrl-D ends it; Ctrl-C kills the running line.\n", opts.Name)
	}
	// Ctrl-C ends the running line, not vmctl (nor a vmctl tui waiting on it).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(ios.In)
		sc.Buffer(make([]byte, 64<<10), maxExecStdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		readErr <- sc.Err()
	}()
	status := 0
	for {
		if tty {
			fmt.Fprintf(ios.ErrOut, "%s:%s# ", opts.Name, cwd)
		}
		var line string
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sigs:
			fmt.Fprintln(ios.ErrOut)
			continue
		case err := <-readErr:
			if tty {
				fmt.Fprintln(ios.ErrOut)
			}
			if err != nil {
				return fmt.Errorf("read a line: %w", err)
			}
			return exitWith(status)
		case line = <-lines:
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "":
			continue
		case line == "exit":
			return exitWith(status)
		case strings.HasPrefix(line, "exit "):
			if n, err := strconv.Atoi(strings.TrimSpace(line[5:])); err == nil {
				return exitWith(n)
			}
		}
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			select {
			case <-sigs:
				cancel()
			case <-done:
			}
		}()
		code, dir, err := shellExec(lctx, c, opts, line, cwd)
		close(done)
		interrupted := lctx.Err() != nil && ctx.Err() == nil
		cancel()
		switch {
		case interrupted:
			fmt.Fprintln(ios.ErrOut, "\nvmctl: interrupted; the command is killed in the guest")
			status = 130
			continue
		case err != nil:
			return err
		}
		status = code
		if dir != "" {
			cwd = dir
		}
		if code != 0 && tty {
			fmt.Fprintf(ios.ErrOut, "[exit %d]\n", code)
		}
	}
}

func exitWith(code int) error {
	if code != 0 {
		return &ExitStatusError{Code: code}
	}
	return nil
}

// shellExec runs one line and prints its output; it returns the line's
// exit status and the directory it ended in ("" when not reported).
func shellExec(ctx context.Context, c *client.Client, opts *ShellOptions, line, cwd string) (int, string, error) {
	res, err := c.Exec(ctx, opts.Name, shellLine(line, cwd, opts.Timeout))
	if err != nil {
		return 0, "", err
	}
	stdout, err := api.DecodeOutput(res.Stdout, res.StdoutEncoding)
	if err != nil {
		return 0, "", fmt.Errorf("decode stdout: %w", err)
	}
	stderr, err := api.DecodeOutput(res.Stderr, res.StderrEncoding)
	if err != nil {
		return 0, "", fmt.Errorf("decode stderr: %w", err)
	}
	stderr, dir, _ := splitCwd(stderr)
	if _, err := opts.IO.Out.Write(stdout); err != nil {
		return 0, "", err
	}
	if len(stdout) > 0 && !bytes.HasSuffix(stdout, []byte("\n")) && opts.IO.CanPrompt() {
		fmt.Fprintln(opts.IO.Out) // the prompt starts a line of its own
	}
	if _, err := opts.IO.ErrOut.Write(stderr); err != nil {
		return 0, "", err
	}
	if res.Message != "" {
		fmt.Fprintf(opts.IO.ErrOut, "vmctl: %s\n", res.Message)
	}
	if res.ExitCode == 127 && res.Message != "" && line == ":" {
		return 0, "", errors.New("the guest has no /bin/sh")
	}
	return res.ExitCode, dir, nil
}

// withoutInterrupt is ctx but for Ctrl-C: main's context ends on SIGINT,
// and a program that handles Ctrl-C itself (vmctl shell, and vmctl tui
// while a shell it started has the terminal: they share its process group)
// must not end with it. The result ends when ctx ends for another reason,
// on SIGTERM, or when stop is called.
func withoutInterrupt(ctx context.Context) (_ context.Context, stop func()) {
	out, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		defer signal.Stop(term)
		parent := ctx.Done()
		for {
			select {
			case <-parent:
				if cause := context.Cause(ctx); !isInterrupt(cause) {
					cancel(cause)
					return
				}
				parent = nil // Ctrl-C: the program's to handle
			case s := <-term:
				cancel(fmt.Errorf("%s signal received", s))
				return
			case <-out.Done():
				return
			}
		}
	}()
	return out, func() { cancel(context.Canceled) }
}

// isInterrupt tells signal.NotifyContext's cause for SIGINT (its type is
// unexported; its text is "interrupt signal received").
func isInterrupt(err error) bool {
	return err != nil && err.Error() == os.Interrupt.String()+" signal received"
}
