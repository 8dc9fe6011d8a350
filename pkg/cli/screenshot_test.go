package cli

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var fakePNG = []byte("\x89PNG\r\n\x1a\n fake")

// screenshotServer answers the screenshot route: web has a PNG, off is stopped.
func screenshotServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/vms/web/screenshot":
			w.Header().Set("Content-Type", "image/png")
			_, _ = w.Write(fakePNG)
		case "/api/v1/vms/off/screenshot":
			writeErr(w, http.StatusConflict, "conflict", "vm is not running")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestNewCmdScreenshot(t *testing.T) {
	for _, c := range []struct {
		args    string
		want    ScreenshotOptions
		wantErr bool
	}{
		{args: "web -o a.png", want: ScreenshotOptions{Name: "web", Output: "a.png"}},
		{args: "web --output -", want: ScreenshotOptions{Name: "web", Output: "-"}},
		{args: "web", want: ScreenshotOptions{Name: "web", Output: "-"}},
		{args: "-o a.png", wantErr: true},
	} {
		t.Run(c.args, func(t *testing.T) {
			e := newTestEnv(t)
			var got *ScreenshotOptions
			cmd := NewCmdScreenshot(e.f, func(_ context.Context, o *ScreenshotOptions) error { got = o; return nil })
			cmd.SetArgs(strings.Fields(c.args))
			cmd.SetOut(e.out)
			cmd.SetErr(e.errOut)
			err := cmd.Execute()
			if c.wantErr {
				if err == nil {
					t.Fatalf("accepted: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != c.want.Name || got.Output != c.want.Output {
				t.Fatalf("got %+v, want %+v", *got, c.want)
			}
		})
	}
}

func TestScreenshotRun(t *testing.T) {
	url := screenshotServer(t)
	ctx := context.Background()

	e := newTestEnv(t)
	e.server = url
	file := filepath.Join(t.TempDir(), "web.png")
	opts := &ScreenshotOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: "web", Output: file}
	if err := screenshotRun(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(file); err != nil || !bytes.Equal(b, fakePNG) {
		t.Fatalf("file %q, %v", b, err)
	}

	e = newTestEnv(t)
	e.server = url
	opts = &ScreenshotOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: "web", Output: "-"}
	if err := screenshotRun(ctx, opts); err != nil || !bytes.Equal(e.out.Bytes(), fakePNG) {
		t.Fatalf("stdout %q, %v", e.out, err)
	}

	// A PNG is not for a terminal: refused before asking the server.
	e = newTestEnv(t)
	e.server = url
	e.tty()
	opts = &ScreenshotOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: "web", Output: "-"}
	var fe *FlagError
	if err := screenshotRun(ctx, opts); !errors.As(err, &fe) || e.out.Len() != 0 {
		t.Fatalf("to a tty: %v, stdout %q", err, e.out)
	}

	e = newTestEnv(t)
	e.server = url
	opts = &ScreenshotOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: "off", Output: file + ".off"}
	if err := screenshotRun(ctx, opts); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("stopped vm: %v", err)
	}
	if _, err := os.Stat(file + ".off"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file was written for a failed screenshot: %v", err)
	}
}
