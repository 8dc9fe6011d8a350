package cli

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestParseTUI(t *testing.T) {
	for _, tc := range []struct {
		argv     []string
		all      bool
		interval time.Duration
		flagErr  bool
	}{
		{argv: nil, interval: 2 * time.Second},
		{argv: []string{"-A", "--poll-interval", "500ms"}, all: true, interval: 500 * time.Millisecond},
		{argv: []string{"--poll-interval", "0s"}, flagErr: true},
		{argv: []string{"web"}, flagErr: true},
	} {
		t.Run(strings.Join(tc.argv, " "), func(t *testing.T) {
			var got *TUIOptions
			cmd := NewCmdTUI(newTestEnv(t).f, func(_ context.Context, o *TUIOptions) error { got = o; return nil })
			err := parse(t, cmd, tc.argv...)
			if tc.flagErr {
				if !isFlagError(err) {
					t.Fatalf("err %v, want a flag error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.All != tc.all || got.PollInterval != tc.interval {
				t.Fatalf("options %+v", got)
			}
		})
	}
}

func TestTUINeedsTerminal(t *testing.T) {
	e := newTestEnv(t)
	err := tuiRun(context.Background(), &TUIOptions{IO: e.f.IOStreams, Client: e.f.Client, PollInterval: time.Second})
	if err == nil || !strings.Contains(err.Error(), "needs a terminal") {
		t.Fatalf("err %v", err)
	}
}

// TestTUIRunQuits runs the real program against the fake vmd with "q" typed.
func TestTUIRunQuits(t *testing.T) {
	e := newTestEnv(t)
	e.tty()
	e.in.WriteString("q")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := &TUIOptions{IO: e.f.IOStreams, Client: e.f.Client, PollInterval: time.Second, Browser: func(string) error { return nil }}
	if err := tuiRun(ctx, opts); err != nil {
		t.Fatalf("tui: %v\n%s", err, e.errOut)
	}
	if !strings.Contains(e.out.String(), "vmctl tui") {
		t.Fatalf("output lacks the title:\n%q", e.out.String())
	}
}
