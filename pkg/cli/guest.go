package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
)

// ExitStatusError carries the exit status of a command run in a guest:
// vmctl exits with it and prints nothing more.
type ExitStatusError struct{ Code int }

func (e *ExitStatusError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// maxExecStdin is what -i sends at most: the command travels in one JSON
// request (1 MiB), stdin in it, in base64 when it is not text.
const maxExecStdin = 700 << 10

// ExecOptions are the inputs of vmctl exec.
type ExecOptions struct {
	IO     *IOStreams
	Client func() (*client.Client, error)

	Name    string
	Command []string
	Stdin   bool
	Timeout time.Duration
}

// NewCmdExec builds `vmctl exec NAME [-i] [--timeout D] -- CMD ARGS…`.
func NewCmdExec(f *Factory, runF func(context.Context, *ExecOptions) error) *cobra.Command {
	opts := &ExecOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "exec NAME [-i] [--timeout D] -- COMMAND [ARG...]",
		Short: "Run a command in a VM through its guest agent",
		Long: `Run a command in a VM through its guest agent, without a network.

The command runs without a shell; its output is printed once it has ended,
stdout to stdout and stderr to stderr, and vmctl exits with its exit status.
-i sends vmctl's standard input (at most 700 KiB) to the command.
A command still running after --timeout is killed in the guest (exit 124).
A program the guest does not have exits 127. When the guest has no agent,
or it does not answer, vmctl exits 125.`,
		Example: `  vmctl exec web -- uname -a
  vmctl exec web -- sh -c 'echo $((6*7))'
  echo hello | vmctl exec web -i -- cat`,
		ValidArgsFunction: completeVMNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			switch {
			case len(args) == 0:
				return flagErrorf("NAME is required")
			case dash == 0:
				return flagErrorf("NAME comes before --")
			case len(args) < 2:
				return flagErrorf("a command is required after NAME (vmctl exec NAME -- COMMAND ARGS...)")
			case dash > 1:
				return flagErrorf("one NAME before --, got %d arguments", dash)
			}
			opts.Name, opts.Command = args[0], args[1:]
			if opts.Timeout <= 0 || opts.Timeout > time.Hour {
				return flagErrorf("--timeout must be above 0 and at most 1h")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return execRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Stdin, "stdin", "i", false, "send standard input to the command")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 30*time.Second, "kill the command in the guest after this long")
	return cmd
}

func execRun(ctx context.Context, opts *ExecOptions) error {
	req := api.ExecRequest{Command: opts.Command, Timeout: opts.Timeout.String()}
	if opts.Stdin {
		b, err := io.ReadAll(io.LimitReader(opts.IO.In, maxExecStdin+1))
		if err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
		if len(b) > maxExecStdin {
			return fmt.Errorf("stdin is larger than %d bytes; copy it in with vmctl cp instead", maxExecStdin)
		}
		if utf8.Valid(b) {
			req.Stdin = string(b)
		} else {
			req.Stdin, req.StdinEncoding = api.EncodeOutput(b)
		}
	}
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	res, err := c.Exec(ctx, opts.Name, req)
	if err != nil {
		return err
	}
	stdout, err := api.DecodeOutput(res.Stdout, res.StdoutEncoding)
	if err != nil {
		return fmt.Errorf("decode stdout: %w", err)
	}
	stderr, err := api.DecodeOutput(res.Stderr, res.StderrEncoding)
	if err != nil {
		return fmt.Errorf("decode stderr: %w", err)
	}
	if _, err := opts.IO.Out.Write(stdout); err != nil {
		return err
	}
	if _, err := opts.IO.ErrOut.Write(stderr); err != nil {
		return err
	}
	if res.Message != "" {
		fmt.Fprintf(opts.IO.ErrOut, "vmctl: %s\n", res.Message)
	}
	if res.ExitCode != 0 {
		return &ExitStatusError{Code: res.ExitCode}
	}
	return nil
}

// CopyOptions are the inputs of vmctl cp.
type CopyOptions struct {
	IO     *IOStreams
	Client func() (*client.Client, error)

	Src, Dst string
}

// NewCmdCopy builds `vmctl cp SRC DST`.
func NewCmdCopy(f *Factory, runF func(context.Context, *CopyOptions) error) *cobra.Command {
	opts := &CopyOptions{IO: f.IOStreams, Client: f.Client}
	cmd := &cobra.Command{
		Use:   "cp SRC DST",
		Short: "Copy a file into or out of a VM through its guest agent",
		Long: `Copy a file into or out of a VM through its guest agent, without a network.

One side is NAME:/absolute/path in the VM, the other a local path ('-' is
stdin or stdout). A guest path ending in / takes the local file's name.
The copy streams; a progress bar shows on a terminal.`,
		Example: `  vmctl cp ./build.tar.gz web:/tmp/build.tar.gz
  vmctl cp web:/var/log/messages ./messages
  vmctl cp web:/etc/os-release -`,
		Args: exactArgs(2, "SRC DST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Src, opts.Dst = args[0], args[1]
			_, _, srcGuest := guestPath(opts.Src)
			_, _, dstGuest := guestPath(opts.Dst)
			if srcGuest == dstGuest {
				return flagErrorf("exactly one of SRC and DST is NAME:/path in a VM")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return copyRun(cmd.Context(), opts)
		},
	}
	return cmd
}

// guestPath splits "NAME:/path"; a local path (with a / or . before any
// colon, or none) is not one.
func guestPath(s string) (name, p string, ok bool) {
	name, p, ok = strings.Cut(s, ":")
	if !ok || name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return "", "", false
	}
	return name, p, true
}

func copyRun(ctx context.Context, opts *CopyOptions) error {
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	if name, p, ok := guestPath(opts.Dst); ok {
		return copyIn(ctx, c, opts, name, p)
	}
	name, p, _ := guestPath(opts.Src)
	return copyOut(ctx, c, opts, name, p)
}

func copyIn(ctx context.Context, c *client.Client, opts *CopyOptions, name, p string) error {
	var r io.Reader = opts.IO.In
	size := int64(-1)
	if opts.Src != "-" {
		f, err := os.Open(opts.Src)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if st.IsDir() {
			return fmt.Errorf("%s is a directory: vmctl cp copies one file", opts.Src)
		}
		r, size = f, st.Size()
		if strings.HasSuffix(p, "/") {
			p += filepath.Base(opts.Src)
		}
	}
	bar := newProgress(opts.IO, "→ "+name+":"+p, size)
	res, err := c.Upload(ctx, name, p, bar.reader(r), size)
	bar.done(err == nil)
	if err != nil {
		return err
	}
	opts.IO.Infof("copied %s to %s:%s\n", byteCount(res.Size), name, res.Path)
	return nil
}

func copyOut(ctx context.Context, c *client.Client, opts *CopyOptions, name, p string) error {
	body, err := c.Download(ctx, name, p)
	if err != nil {
		return err
	}
	defer body.Close()
	if opts.Dst == "-" {
		_, err := io.Copy(opts.IO.Out, body) // no bar: stdout is the data
		return err
	}
	dst := opts.Dst
	if st, err := os.Stat(dst); err == nil && st.IsDir() {
		dst = filepath.Join(dst, path.Base(p))
	}
	// A temporary file beside the destination, renamed once complete: a
	// broken copy leaves no half file under the real name.
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".vmctl-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	bar := newProgress(opts.IO, name+":"+p+" →", -1)
	n, err := io.Copy(tmp, bar.reader(body))
	bar.done(err == nil)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s:%s: %w", name, p, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	opts.IO.Infof("copied %s from %s:%s to %s\n", byteCount(n), name, p, dst)
	return nil
}

// progress draws a one-line progress bar on stderr when it is a terminal.
type progress struct {
	ios   *IOStreams
	tty   bool
	label string
	total int64
	n     int64
	start time.Time
	last  time.Time
}

func newProgress(ios *IOStreams, label string, total int64) *progress {
	return &progress{ios: ios, tty: ios.ErrTTY && !ios.Quiet, label: label, total: total, start: time.Now()}
}

func (p *progress) reader(r io.Reader) io.Reader {
	if !p.tty {
		return r
	}
	return &progressReader{r: r, p: p}
}

type progressReader struct {
	r io.Reader
	p *progress
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.add(n)
	return n, err
}

func (p *progress) add(n int) {
	p.n += int64(n)
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond {
		p.last = now
		p.draw()
	}
}

func (p *progress) draw() {
	secs := time.Since(p.start).Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(p.n) / secs / 1e6
	}
	line := fmt.Sprintf("%s %s", p.label, byteCount(p.n))
	if p.total > 0 {
		const width = 30
		fill := int(float64(width) * float64(p.n) / float64(p.total))
		fill = min(max(fill, 0), width)
		line = fmt.Sprintf("%s [%s%s] %3d%% %s/%s", p.label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
			100*p.n/p.total, byteCount(p.n), byteCount(p.total))
	}
	fmt.Fprintf(p.ios.ErrOut, "\r\033[K%s %.1f MB/s", line, rate)
}

func (p *progress) done(ok bool) {
	if !p.tty {
		return
	}
	if ok {
		p.draw()
	}
	fmt.Fprintln(p.ios.ErrOut)
}

// byteCount is a size in binary units, for messages and the progress bar.
func byteCount(n int64) string {
	return humanBytes(&IOStreams{OutTTY: true}, n)
}
