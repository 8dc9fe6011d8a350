package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"

	"github.com/vmdhq/vmd/pkg/client"
)

// detachKey is Ctrl-], telnet's and virsh console's escape.
const detachKey = 0x1d

// errDetached ends a serial session the user left with detachKey.
var errDetached = errors.New("detached")

// serialRun attaches the terminal to a VM's serial port until Ctrl-], the
// end of stdin, the server closing the port or ctx ending. A terminal is
// put in raw mode (so Ctrl-C reaches the guest) and restored on every way
// out, panics included, by the deferred Restore. The serial port has no
// window size, so resizes are not sent anywhere.
func serialRun(ctx context.Context, opts *ConsoleOptions, c *client.Client) error {
	conn, err := c.DialSerial(ctx, opts.Name, opts.Write)
	if err != nil {
		return err
	}
	defer conn.Close()
	if f, ok := opts.IO.In.(*os.File); ok && opts.IO.InTTY {
		state, err := term.MakeRaw(int(f.Fd()))
		if err != nil {
			return fmt.Errorf("serial console: raw terminal: %w", err)
		}
		defer func() { _ = term.Restore(int(f.Fd()), state) }()
	}
	opts.IO.Infof("Connected to the serial port of vm %s; Ctrl-] detaches.\r\n", opts.Name)
	done := make(chan error, 2)
	go func() { // guest to terminal
		_, err := io.Copy(opts.IO.Out, conn)
		done <- &portClosed{err}
	}()
	go func() { done <- typeInto(conn, opts.IO.In) }()
	var end error
	select {
	case end = <-done:
	case <-ctx.Done():
		end = ctx.Err()
	}
	conn.Close()
	var pc *portClosed
	switch {
	case errors.As(end, &pc):
		if pc.err != nil {
			return fmt.Errorf("serial port of vm %s closed: %w", opts.Name, pc.err)
		}
		opts.IO.Infof("\r\nThe serial port of vm %s closed.\r\n", opts.Name)
	case ctx.Err() != nil:
	case errors.Is(end, errDetached), errors.Is(end, io.EOF):
		opts.IO.Infof("\r\nDetached from vm %s.\r\n", opts.Name)
	default:
		return fmt.Errorf("serial console of vm %s: %w", opts.Name, end)
	}
	return nil
}

// portClosed: the server ended the connection (err nil for a normal close).
type portClosed struct{ err error }

func (p *portClosed) Error() string { return fmt.Sprintf("port closed: %v", p.err) }

// typeInto copies in to w until detachKey (errDetached) or in ends (io.EOF).
func typeInto(w io.Writer, in io.Reader) error {
	buf := make([]byte, 4096)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			b := buf[:n]
			i := bytes.IndexByte(b, detachKey)
			if i >= 0 {
				b = b[:i]
			}
			if len(b) > 0 {
				if _, werr := w.Write(b); werr != nil {
					return werr
				}
			}
			if i >= 0 {
				return errDetached
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.EOF
			}
			return err
		}
	}
}
