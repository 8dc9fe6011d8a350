// Package cli implements vmctl's commands. Every command has an Options
// struct, a NewCmdX(f, runF) that only parses argv into it, and an xRun(ctx,
// opts) that does the work through IOStreams and a lazily built API client,
// following the GitHub CLI's layout. Main maps errors to exit codes.
package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// IOStreams are where a command reads and writes. Data goes to Out,
// messages and errors to ErrOut.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	InTTY  bool
	OutTTY bool
	ErrTTY bool
	// Color allows ANSI colour on Out; it is only honoured when OutTTY.
	Color bool
	// Quiet drops the informational messages of Infof (--quiet), so a
	// script's stderr holds only errors.
	Quiet bool

	// readPassword reads a line from In without echo; nil means In cannot do that.
	readPassword func() (string, error)
	// lines wraps In once so prompts and --password-stdin share its buffer.
	lines *bufio.Reader
}

// System returns the process's standard streams, with TTY detection and
// colour turned off by NO_COLOR or TERM=dumb.
func System() *IOStreams {
	ios := &IOStreams{
		In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr,
		InTTY:  term.IsTerminal(int(os.Stdin.Fd())),
		OutTTY: term.IsTerminal(int(os.Stdout.Fd())),
		ErrTTY: term.IsTerminal(int(os.Stderr.Fd())),
	}
	_, noColor := os.LookupEnv("NO_COLOR")
	ios.Color = ios.OutTTY && !noColor && os.Getenv("TERM") != "dumb"
	if ios.InTTY {
		fd := int(os.Stdin.Fd())
		ios.readPassword = func() (string, error) {
			b, err := term.ReadPassword(fd)
			return string(b), err
		}
	}
	return ios
}

// TestStreams returns streams backed by buffers, none of them a TTY.
func TestStreams() (ios *IOStreams, in *bytes.Buffer, out *bytes.Buffer, errOut *bytes.Buffer) {
	in, out, errOut = &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}

// CanPrompt reports whether a person can answer questions: both stdin and
// stdout are terminals.
func (s *IOStreams) CanPrompt() bool { return s.InTTY && s.OutTTY }

// colorOn reports whether Out gets ANSI colour.
func (s *IOStreams) colorOn() bool { return s.Color && s.OutTTY }

// Infof writes an informational message to ErrOut unless Quiet.
func (s *IOStreams) Infof(format string, args ...any) {
	if !s.Quiet {
		fmt.Fprintf(s.ErrOut, format, args...)
	}
}

// ReadLine reads one line from In without its line ending. An empty input
// at EOF is io.EOF.
func (s *IOStreams) ReadLine() (string, error) {
	if s.lines == nil {
		s.lines = bufio.NewReader(s.In)
	}
	line, err := s.lines.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// Prompt writes question to ErrOut and reads the answer from In.
func (s *IOStreams) Prompt(question string) (string, error) {
	fmt.Fprint(s.ErrOut, question)
	line, err := s.ReadLine()
	if err != nil {
		return "", fmt.Errorf("read answer: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// PromptPassword asks for a secret without echo. Without a terminal it
// reads a plain line (used by tests).
func (s *IOStreams) PromptPassword(question string) (string, error) {
	fmt.Fprint(s.ErrOut, question)
	if s.readPassword != nil {
		pw, err := s.readPassword()
		fmt.Fprintln(s.ErrOut)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return pw, nil
	}
	line, err := s.ReadLine()
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	return line, nil
}

// Confirm asks a yes/no question; only "y" or "yes" is a yes.
func (s *IOStreams) Confirm(question string) (bool, error) {
	ans, err := s.Prompt(question + " [y/N] ")
	if err != nil {
		return false, err
	}
	ans = strings.ToLower(ans)
	return ans == "y" || ans == "yes", nil
}
