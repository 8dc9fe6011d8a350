package cli

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// parse runs cmd with argv through a root that maps flag errors like Main.
// parsedOptions parses argv with the command newCmd builds and returns
// the options its run was given; with wantErr the parse must fail with a
// FlagError, and nil is returned.
func parsedOptions[O any](t *testing.T, newCmd func(*Factory, func(context.Context, *O) error) *cobra.Command, wantErr bool, argv ...string) *O {
	t.Helper()
	var got *O
	err := parse(t, newCmd(newTestEnv(t).f, func(_ context.Context, o *O) error { got = o; return nil }), argv...)
	if wantErr {
		if !isFlagError(err) {
			t.Fatalf("%q: err = %v, want FlagError", argv, err)
		}
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func parse(t *testing.T, cmd *cobra.Command, argv ...string) error {
	t.Helper()
	root := &cobra.Command{Use: "vmctl", SilenceErrors: true, SilenceUsage: true}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &FlagError{err: err} })
	root.PersistentFlags().String("server", "", "")
	root.PersistentFlags().String("context", "", "")
	root.AddCommand(cmd)
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	root.SetArgs(append([]string{cmd.Name()}, argv...))
	_, err := root.ExecuteContextC(context.Background())
	return err
}

func isFlagError(err error) bool {
	var fe *FlagError
	return errors.As(err, &fe)
}

func TestParseCreate(t *testing.T) {
	tests := []struct {
		name    string
		argv    []string
		want    CreateOptions
		wantErr bool
	}{
		{"minimal", []string{"web", "--template", "tiny"},
			CreateOptions{Name: "web", Template: "tiny", Timeout: 5 * time.Minute, Output: "table"}, false},
		{"all flags", []string{"db", "-t", "tiny", "--cpu", "2", "--memory", "1024", "--disk", "5", "--userdata", "u.yaml", "--wait", "--timeout", "30s", "-o", "json", "--network", "none"},
			CreateOptions{Name: "db", Template: "tiny", CPU: 2, MemoryMB: 1024, DiskGB: 5, UserDataFile: "u.yaml", Network: "none", Wait: true, Timeout: 30 * time.Second, Output: "json"}, false},
		{"wait ready", []string{"web", "-t", "tiny", "--wait=ready"},
			CreateOptions{Name: "web", Template: "tiny", Wait: true, WaitReady: true, Timeout: 5 * time.Minute, Output: "table"}, false},
		{"wait running", []string{"web", "-t", "tiny", "--wait=running"},
			CreateOptions{Name: "web", Template: "tiny", Wait: true, Timeout: 5 * time.Minute, Output: "table"}, false},
		{"wait bad value", []string{"web", "-t", "tiny", "--wait=booted"}, CreateOptions{}, true},
		{"no template", []string{"web"}, CreateOptions{}, true},
		{"no name", []string{"--template", "tiny"}, CreateOptions{}, true},
		{"two names", []string{"a", "b", "--template", "tiny"}, CreateOptions{}, true},
		{"bad cpu", []string{"web", "--template", "tiny", "--cpu", "two"}, CreateOptions{}, true},
		{"negative", []string{"web", "--template", "tiny", "--memory", "-1"}, CreateOptions{}, true},
		{"bad output", []string{"web", "--template", "tiny", "-o", "xml"}, CreateOptions{}, true},
		{"lifetimes", []string{"ci", "-t", "tiny", "--ttl", "30m", "--idle-stop", "10m"},
			CreateOptions{Name: "ci", Template: "tiny", Timeout: 5 * time.Minute, Output: "table", TTL: "30m", IdleStop: "10m"}, false},
		{"bad network", []string{"web", "--template", "tiny", "--network", "bridge"}, CreateOptions{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parsedOptions(t, NewCmdCreate, tt.wantErr, tt.argv...)
			if tt.wantErr {
				return
			}
			g := *got
			g.IO, g.Client, g.Now, g.Interval = nil, nil, nil, 0
			if !reflect.DeepEqual(g, tt.want) {
				t.Errorf("got %+v\nwant %+v", g, tt.want)
			}
		})
	}
}

func TestParseSimpleCommands(t *testing.T) {
	type result struct {
		name  string
		extra any
	}
	tests := []struct {
		name    string
		build   func(f *Factory, got *result) *cobra.Command
		argv    []string
		want    result
		wantErr bool
	}{
		{"get", func(f *Factory, got *result) *cobra.Command {
			return NewCmdGet(f, func(_ context.Context, o *GetOptions) error { *got = result{o.Name, o.Output}; return nil })
		}, []string{"web", "-o", "yaml"}, result{"web", "yaml"}, false},
		{"get no name", func(f *Factory, got *result) *cobra.Command { return NewCmdGet(f, nil) }, nil, result{}, true},
		{"list", func(f *Factory, got *result) *cobra.Command {
			return NewCmdList(f, func(_ context.Context, o *ListOptions) error { *got = result{o.Output, o.All}; return nil })
		}, []string{"--all", "-o", "name"}, result{"name", true}, false},
		{"list extra arg", func(f *Factory, got *result) *cobra.Command { return NewCmdList(f, nil) }, []string{"x"}, result{}, true},
		{"list watch", func(f *Factory, got *result) *cobra.Command {
			return NewCmdList(f, func(_ context.Context, o *ListOptions) error { *got = result{o.Output, o.Watch}; return nil })
		}, []string{"-w"}, result{"table", true}, false},
		{"get watch", func(f *Factory, got *result) *cobra.Command {
			return NewCmdGet(f, func(_ context.Context, o *GetOptions) error { *got = result{o.Name, o.Watch}; return nil })
		}, []string{"web", "--watch"}, result{"web", true}, false},
		{"delete wait", func(f *Factory, got *result) *cobra.Command {
			return NewCmdDelete(f, func(_ context.Context, o *DeleteOptions) error {
				*got = result{o.Name, [2]any{o.Wait, o.Timeout}}
				return nil
			})
		}, []string{"web", "-y", "--wait", "--timeout", "1m"}, result{"web", [2]any{true, time.Minute}}, false},
		{"delete bad timeout", func(f *Factory, got *result) *cobra.Command { return NewCmdDelete(f, nil) }, []string{"web", "-y", "--timeout", "0s"}, result{}, true},
		{"start", func(f *Factory, got *result) *cobra.Command {
			return NewCmdStart(f, func(_ context.Context, o *PowerOptions) error { *got = result{o.Name, o.Force}; return nil })
		}, []string{"web"}, result{"web", false}, false},
		{"stop force", func(f *Factory, got *result) *cobra.Command {
			return NewCmdStop(f, func(_ context.Context, o *PowerOptions) error { *got = result{o.Name, o.Force}; return nil })
		}, []string{"web", "--force"}, result{"web", true}, false},
		{"delete yes", func(f *Factory, got *result) *cobra.Command {
			return NewCmdDelete(f, func(_ context.Context, o *DeleteOptions) error { *got = result{o.Name, o.Yes}; return nil })
		}, []string{"web", "--yes"}, result{"web", true}, false},
		{"delete without yes off a tty", func(f *Factory, got *result) *cobra.Command {
			return NewCmdDelete(f, func(context.Context, *DeleteOptions) error { return nil })
		}, []string{"web"}, result{}, true},
		{"wait", func(f *Factory, got *result) *cobra.Command {
			return NewCmdWait(f, func(_ context.Context, o *WaitOptions) error {
				*got = result{o.Name, [2]any{o.For, o.Timeout}}
				return nil
			})
		}, []string{"web", "--for", "state=running"}, result{"web", [2]any{waitCondition{state: "running"}, 2 * time.Minute}}, false},
		{"wait delete", func(f *Factory, got *result) *cobra.Command {
			return NewCmdWait(f, func(_ context.Context, o *WaitOptions) error {
				*got = result{o.Name, [2]any{o.For, o.Timeout}}
				return nil
			})
		}, []string{"web", "--for=delete", "--timeout", "10s"}, result{"web", [2]any{waitCondition{deleted: true}, 10 * time.Second}}, false},
		{"wait ready", func(f *Factory, got *result) *cobra.Command {
			return NewCmdWait(f, func(_ context.Context, o *WaitOptions) error {
				*got = result{o.Name, [2]any{o.For, o.Timeout}}
				return nil
			})
		}, []string{"web", "--for", "condition=ready"}, result{"web", [2]any{waitCondition{state: "running", ready: true}, 2 * time.Minute}}, false},
		{"wait bad condition", func(f *Factory, got *result) *cobra.Command { return NewCmdWait(f, nil) }, []string{"web", "--for", "condition=up"}, result{}, true},
		{"exec", func(f *Factory, got *result) *cobra.Command {
			return NewCmdExec(f, func(_ context.Context, o *ExecOptions) error {
				*got = result{o.Name, [3]any{strings.Join(o.Command, " "), o.Stdin, o.Timeout}}
				return nil
			})
		}, []string{"web", "-i", "--timeout", "5s", "--", "sh", "-c", "exit 3"}, result{"web", [3]any{"sh -c exit 3", true, 5 * time.Second}}, false},
		{"exec no command", func(f *Factory, got *result) *cobra.Command { return NewCmdExec(f, nil) }, []string{"web"}, result{}, true},
		{"exec two names", func(f *Factory, got *result) *cobra.Command { return NewCmdExec(f, nil) }, []string{"web", "db", "--", "true"}, result{}, true},
		{"exec bad timeout", func(f *Factory, got *result) *cobra.Command { return NewCmdExec(f, nil) }, []string{"web", "--timeout", "0s", "--", "true"}, result{}, true},
		{"cp in", func(f *Factory, got *result) *cobra.Command {
			return NewCmdCopy(f, func(_ context.Context, o *CopyOptions) error { *got = result{o.Src, o.Dst}; return nil })
		}, []string{"./a:b", "web:/tmp/a"}, result{"./a:b", "web:/tmp/a"}, false},
		{"cp both local", func(f *Factory, got *result) *cobra.Command { return NewCmdCopy(f, nil) }, []string{"a", "b"}, result{}, true},
		{"cp both guests", func(f *Factory, got *result) *cobra.Command { return NewCmdCopy(f, nil) }, []string{"a:/x", "b:/y"}, result{}, true},
		{"wait bad state", func(f *Factory, got *result) *cobra.Command { return NewCmdWait(f, nil) }, []string{"web", "--for", "state=flying"}, result{}, true},
		{"wait bad for", func(f *Factory, got *result) *cobra.Command { return NewCmdWait(f, nil) }, []string{"web", "--for", "running"}, result{}, true},
		{"wait no for", func(f *Factory, got *result) *cobra.Command { return NewCmdWait(f, nil) }, []string{"web"}, result{}, true},
		{"templates", func(f *Factory, got *result) *cobra.Command {
			return NewCmdTemplates(f, func(_ context.Context, o *TemplatesOptions) error { *got = result{o.Output, nil}; return nil })
		}, []string{"-o", "wide"}, result{"wide", nil}, false},
		{"me", func(f *Factory, got *result) *cobra.Command {
			return NewCmdMe(f, func(_ context.Context, o *MeOptions) error { *got = result{o.Output, nil}; return nil })
		}, nil, result{"table", nil}, false},
		{"verify", func(f *Factory, got *result) *cobra.Command {
			return NewCmdVerify(f, func(_ context.Context, o *VerifyOptions) error { *got = result{o.Token, nil}; return nil })
		}, []string{"abc"}, result{"abc", nil}, false},
		{"verify no token", func(f *Factory, got *result) *cobra.Command { return NewCmdVerify(f, nil) }, nil, result{}, true},
		// Defect 12: a token starting with '-' was read as a flag.
		{"verify -- -token", func(f *Factory, got *result) *cobra.Command {
			return NewCmdVerify(f, func(_ context.Context, o *VerifyOptions) error { *got = result{o.Token, o.TokenStdin}; return nil })
		}, []string{"--", "-abc"}, result{"-abc", false}, false},
		{"verify - reads stdin", func(f *Factory, got *result) *cobra.Command {
			return NewCmdVerify(f, func(_ context.Context, o *VerifyOptions) error { *got = result{o.Token, o.TokenStdin}; return nil })
		}, []string{"-"}, result{"", true}, false},
		{"verify --token-stdin", func(f *Factory, got *result) *cobra.Command {
			return NewCmdVerify(f, func(_ context.Context, o *VerifyOptions) error { *got = result{o.Token, o.TokenStdin}; return nil })
		}, []string{"--token-stdin"}, result{"", true}, false},
		{"verify --token-stdin and a token", func(f *Factory, got *result) *cobra.Command { return NewCmdVerify(f, nil) }, []string{"--token-stdin", "abc"}, result{}, true},
		{"verify -token", func(f *Factory, got *result) *cobra.Command { return NewCmdVerify(f, nil) }, []string{"-abc"}, result{}, true},
		{"verify two tokens", func(f *Factory, got *result) *cobra.Command { return NewCmdVerify(f, nil) }, []string{"abc", "def"}, result{}, true},
		{"login", func(f *Factory, got *result) *cobra.Command {
			return NewCmdLogin(f, func(_ context.Context, o *LoginOptions) error {
				*got = result{o.Server, [3]any{o.Email, o.PasswordStdin, o.ContextName}}
				return nil
			})
		}, []string{"--server", "http://h:1", "--email", "a@b.c", "--password-stdin", "--context", "prod"},
			result{"http://h:1", [3]any{"a@b.c", true, "prod"}}, false},
		{"signup", func(f *Factory, got *result) *cobra.Command {
			return NewCmdSignup(f, func(_ context.Context, o *SignupOptions) error {
				*got = result{o.Server, [2]any{o.Email, o.PasswordStdin}}
				return nil
			})
		}, []string{"--server", "h:1", "--email", "a@b.c"}, result{"h:1", [2]any{"a@b.c", false}}, false},
		{"version", func(f *Factory, got *result) *cobra.Command {
			return NewCmdVersion(f, func(_ context.Context, o *VersionOptions) error {
				*got = result{o.ClientVersion, o.ClientOnly}
				return nil
			})
		}, []string{"--client"}, result{"1.2.3", true}, false},
		{"use-context", func(f *Factory, got *result) *cobra.Command {
			return NewCmdUseContext(f, func(o *ConfigOptions) error { *got = result{o.Name, nil}; return nil })
		}, []string{"prod"}, result{"prod", nil}, false},
		{"get-contexts", func(f *Factory, got *result) *cobra.Command {
			return NewCmdGetContexts(f, func(o *ConfigOptions) error { *got = result{o.Output, nil}; return nil })
		}, []string{"-o", "json"}, result{"json", nil}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got result
			err := parse(t, tt.build(newTestEnv(t).f, &got), tt.argv...)
			if tt.wantErr {
				if !isFlagError(err) {
					t.Fatalf("err = %v, want FlagError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestDeleteOnTTYNeedsNoYes(t *testing.T) {
	e := newTestEnv(t)
	e.tty()
	called := false
	err := parse(t, NewCmdDelete(e.f, func(context.Context, *DeleteOptions) error { called = true; return nil }), "web")
	if err != nil || !called {
		t.Fatalf("err = %v, called = %v", err, called)
	}
}

// A token read as flags gets a hint to put it after "--".
func TestVerifyDashTokenHint(t *testing.T) {
	err := parse(t, NewCmdVerify(newTestEnv(t).f, nil), "-Xq3abc")
	if !isFlagError(err) || !strings.Contains(err.Error(), "vmctl verify -- TOKEN") {
		t.Fatalf("err = %v, want a FlagError with the '--' hint", err)
	}
}
