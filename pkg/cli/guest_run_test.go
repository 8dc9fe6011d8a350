package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
)

// exec of the fake guest: "cat" echoes stdin, "fail N" exits N with a
// line on stderr, "none" is the agent absent.
func (f *fakeVMD) exec(w http.ResponseWriter, r *http.Request) {
	var req api.ExecRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeErr(w, 400, api.CodeBadRequest, "bad json")
		return
	}
	if f.onExec != nil {
		f.onExec(req)
	}
	if r.PathValue("id") == "nope" {
		writeErr(w, 404, api.CodeNotFound, "vm nope not found")
		return
	}
	switch req.Command[0] {
	case "none":
		writeErr(w, 503, api.CodeAgentUnavailable, "the guest agent is not answering")
	case "/bin/sh": // vmctl shell's lines: "cd DIR", "echo WORDS", "false"
		cwd, line := req.Command[4], req.Command[5]
		if cwd == "" {
			cwd = "/root"
		}
		res := api.ExecResponse{}
		switch {
		case strings.HasPrefix(line, "cd "):
			cwd = strings.TrimPrefix(line, "cd ")
		case strings.HasPrefix(line, "echo "):
			res.Stdout = strings.TrimPrefix(line, "echo ") + "\n"
		case line == "false":
			res.ExitCode = 1
		}
		res.Stderr = shellCwdMark + cwd
		writeJSONResp(w, 200, res)
	case "cat":
		in, _ := api.DecodeOutput(req.Stdin, req.StdinEncoding)
		out, enc := api.EncodeOutput(in)
		writeJSONResp(w, 200, api.ExecResponse{Stdout: out, StdoutEncoding: enc})
	default:
		writeJSONResp(w, 200, api.ExecResponse{ExitCode: 42, Stderr: "oops\n", Message: "output was cut off"})
	}
}

func (f *fakeVMD) putFile(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.files[r.PathValue("id")+":"+r.URL.Query().Get("path")] = b
	f.mu.Unlock()
	writeJSONResp(w, 200, api.FileResponse{Path: r.URL.Query().Get("path"), Size: int64(len(b))})
}

func (f *fakeVMD) getFile(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	b, ok := f.files[r.PathValue("id")+":"+r.URL.Query().Get("path")]
	f.mu.Unlock()
	if !ok {
		writeErr(w, 404, api.CodeNotFound, "no such file or directory")
		return
	}
	_, _ = w.Write(b)
}

func TestExecRun(t *testing.T) {
	e := newTestEnv(t)
	in := "a\xffb"
	e.in.WriteString(in)
	err := execRun(context.Background(), &ExecOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: "web", Command: []string{"cat"}, Stdin: true})
	if err != nil || e.out.String() != in {
		t.Fatalf("cat: %q, %v", e.out.String(), err)
	}
	e.out.Reset()
	err = execRun(context.Background(), &ExecOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: "web", Command: []string{"fail"}})
	if ExitCode(err) != 42 || e.errOut.String() != "oops\nvmctl: output was cut off\n" {
		t.Fatalf("fail: exit %d, stderr %q", ExitCode(err), e.errOut.String())
	}
	err = execRun(context.Background(), &ExecOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: "web", Command: []string{"none"}})
	if ExitCode(err) != ExitAgentUnavailable || !strings.Contains(err.Error(), "not answering") {
		t.Fatalf("no agent: exit %d, %v", ExitCode(err), err)
	}
}

func TestCopyRun(t *testing.T) {
	e := newTestEnv(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(src, []byte("hello guest"), 0o600); err != nil {
		t.Fatal(err)
	}
	cp := func(a, b string) error {
		return copyRun(context.Background(), &CopyOptions{IO: e.f.IOStreams, Client: e.f.Client, Src: a, Dst: b})
	}
	if err := cp(src, "web:/tmp/"); err != nil {
		t.Fatal(err)
	}
	if got := string(e.fake.files["web:/tmp/notes.txt"]); got != "hello guest" {
		t.Fatalf("guest file = %q", got)
	}
	into := t.TempDir()
	if err := cp("web:/tmp/notes.txt", into); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(into, "notes.txt")); string(b) != "hello guest" {
		t.Fatalf("copied into a directory: %q", b)
	}
	back := filepath.Join(dir, "back.txt")
	if err := cp("web:/tmp/notes.txt", back); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(back); string(b) != "hello guest" {
		t.Fatalf("copied back %q", b)
	}
	if err := cp("web:/none", filepath.Join(dir, "none")); ExitCode(err) != ExitNotFound {
		t.Fatalf("missing guest file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "none")); err == nil {
		t.Fatal("a failed copy left a file")
	}
	// Off a terminal there is no progress bar on stderr.
	if strings.Contains(e.errOut.String(), "MB/s") {
		t.Fatalf("progress off a tty: %q", e.errOut.String())
	}
}

func TestShellRun(t *testing.T) {
	e := newTestEnv(t)
	var dirs []string
	e.fake.onExec = func(req api.ExecRequest) {
		if len(req.Command) == 6 && req.Command[0] == "/bin/sh" {
			dirs = append(dirs, req.Command[4])
		}
	}
	e.in.WriteString("echo one\n\ncd /tmp\necho two\nfalse\n")
	err := shellRun(context.Background(), &ShellOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: "web", Timeout: time.Minute})
	if ExitCode(err) != 1 || e.out.String() != "one\ntwo\n" {
		t.Fatalf("shell: exit %d (%v), stdout %q", ExitCode(err), err, e.out.String())
	}
	// The first exec finds the agent's directory; cd carries over.
	if want := []string{"", "/root", "/root", "/tmp", "/tmp"}; !slices.Equal(dirs, want) {
		t.Fatalf("directories %q, want %q", dirs, want)
	}
	if strings.Contains(e.errOut.String(), "vmd-cwd") {
		t.Fatalf("the directory report leaked: %q", e.errOut.String())
	}

	e.out.Reset()
	e.in.WriteString("echo three\nexit 7\necho never\n")
	err = shellRun(context.Background(), &ShellOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: "web", Timeout: time.Minute})
	if ExitCode(err) != 7 || e.out.String() != "three\n" {
		t.Fatalf("exit 7: exit %d, stdout %q", ExitCode(err), e.out.String())
	}

	err = shellRun(context.Background(), &ShellOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: "nope", Timeout: time.Minute})
	if err == nil {
		t.Fatal("a shell in a missing VM started")
	}
}

func TestWithoutInterrupt(t *testing.T) {
	parent, cancel := context.WithCancelCause(context.Background())
	ctx, stop := withoutInterrupt(parent)
	defer stop()
	cancel(errors.New("interrupt signal received")) // as signal.NotifyContext says SIGINT
	select {
	case <-ctx.Done():
		t.Fatal("Ctrl-C ended the context")
	case <-time.After(50 * time.Millisecond): // nothing to wait for: asserting an absence
	}
	stop()
	if ctx.Err() == nil {
		t.Fatal("stop did not end it")
	}

	parent, cancel = context.WithCancelCause(context.Background())
	ctx, stop = withoutInterrupt(parent)
	defer stop()
	cancel(errors.New("terminated signal received"))
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("another cause did not end the context")
	}
	if c := context.Cause(ctx); c == nil || c.Error() != "terminated signal received" {
		t.Fatalf("cause %v", c)
	}
}
