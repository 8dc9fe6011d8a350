package qga_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vmdhq/vmd/pkg/vm/qga"
)

func TestCheckPath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"/etc/hosts", true},
		{"/", true},
		{"/a/..b/c..", true},
		{"/a//b/", true},
		{"", false},
		{"etc/hosts", false},
		{"./x", false},
		{"/a/../b", false},
		{"/a/..", false},
		{"/../etc", false},
		{"/a\x00b", false},
	}
	for _, tt := range tests {
		err := qga.CheckPath(tt.path)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, qga.ErrBadPath)) {
			t.Errorf("CheckPath(%q) = %v, want ok=%v", tt.path, err, tt.ok)
		}
	}
}

// A bad path is refused before anything is sent: the client's socket does
// not even exist, so reaching the agent would be ErrNoAgent.
func TestBadPathRefusedBeforeSending(t *testing.T) {
	c := newClient(t, filepath.Join(t.TempDir(), "absent.sock"), qga.Options{})
	ctx := context.Background()
	if _, err := c.Upload(ctx, "/tmp/../etc/passwd", strings.NewReader("x"), 0, nil); !errors.Is(err, qga.ErrBadPath) || errors.Is(err, qga.ErrNoAgent) {
		t.Errorf("upload with ..: %v, want ErrBadPath only", err)
	}
	if _, err := c.Download(ctx, "etc/passwd", io.Discard, nil); !errors.Is(err, qga.ErrBadPath) || errors.Is(err, qga.ErrNoAgent) {
		t.Errorf("download of a relative path: %v, want ErrBadPath only", err)
	}
	if err := c.Ping(ctx); !errors.Is(err, qga.ErrNoAgent) {
		t.Errorf("ping of an absent socket: %v, want ErrNoAgent", err)
	}
}

func TestFileWrappers(t *testing.T) {
	a := startHostAgent(t)
	c := a.client(t, qga.Options{})
	ctx := context.Background()
	p := filepath.Join(a.Dir, "small")
	h, err := c.OpenFile(ctx, p, "w")
	if err != nil {
		t.Fatalf("open for writing: %v", err)
	}
	if n, err := c.WriteFile(ctx, h, []byte("hello")); err != nil || n != 5 {
		t.Fatalf("write: %d, %v", n, err)
	}
	if err := c.CloseFile(ctx, h); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := c.CloseFile(ctx, h); err == nil {
		t.Errorf("second close of handle %d: no error", h)
	}
	h, err = c.OpenFile(ctx, p, "r")
	if err != nil {
		t.Fatalf("open for reading: %v", err)
	}
	defer c.CloseFile(ctx, h)
	var got []string
	for {
		b, eof, err := c.ReadFile(ctx, h, 2)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if len(b) > 0 {
			got = append(got, string(b))
		}
		if eof {
			break
		}
	}
	if strings.Join(got, "|") != "he|ll|o" {
		t.Errorf("read in pieces of 2: %q, want he|ll|o", got)
	}
}

func TestUploadDownload100MB(t *testing.T) {
	a := startHostAgent(t)
	c := a.client(t, qga.Options{})
	ctx := context.Background()
	const size = 100 << 20
	p := filepath.Join(a.Dir, "big")

	sum := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{7}), size), sum)
	var calls int
	var last int64
	n, err := c.Upload(ctx, p, src, 0o640, func(done, total int64) {
		if done <= last || total != -1 {
			t.Errorf("upload progress %d (total %d) after %d", done, total, last)
		}
		calls++
		last = done
	})
	if err != nil || n != size {
		t.Fatalf("upload: %d bytes, %v", n, err)
	}
	if calls != size/qga.DefaultChunkSize || last != size {
		t.Errorf("upload progress: %d calls ending at %d, want %d ending at %d", calls, last, size/qga.DefaultChunkSize, size)
	}
	want := sum.Sum(nil)

	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	disk := sha256.New()
	_, err = io.Copy(disk, f)
	fi, _ := f.Stat()
	f.Close()
	if err != nil || !bytes.Equal(disk.Sum(nil), want) {
		t.Fatalf("file on disk: sha256 differs from what was sent (%v)", err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("uploaded file's mode %v, want 0640", fi.Mode().Perm())
	}

	got := sha256.New()
	last = 0
	n, err = c.Download(ctx, p, got, func(done, total int64) {
		if done <= last || total != size {
			t.Errorf("download progress %d of %d after %d", done, total, last)
		}
		last = done
	})
	if err != nil || n != size || last != size {
		t.Fatalf("download: %d bytes (progress %d), %v", n, last, err)
	}
	if !bytes.Equal(got.Sum(nil), want) {
		t.Fatalf("download: sha256 %x, want %x", got.Sum(nil), want)
	}
}

func TestReadOnlyDestination(t *testing.T) {
	a := startHostAgent(t)
	c := a.client(t, qga.Options{})
	ro := filepath.Join(a.Dir, "ro")
	if err := os.Mkdir(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	// Chown to the agent's user when running as root, so that the mode,
	// not ownership, is what refuses the write.
	fi, err := os.Stat(a.Dir)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if err := os.Lchown(ro, int(st.Uid), int(st.Gid)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(ro, 0o700) })

	p := filepath.Join(ro, "file")
	_, err = c.Upload(context.Background(), p, strings.NewReader("data"), 0, nil)
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "Permission denied") || !strings.Contains(err.Error(), p) {
		t.Fatalf("upload into a 0500 directory: %v, want a permission error naming the path", err)
	}
	var qe *qga.Error
	if !errors.As(err, &qe) || qe.Command != "guest-file-open" {
		t.Errorf("error %v: want the agent's guest-file-open error", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the file exists after a refused upload: %v", err)
	}
	_, err = c.Download(context.Background(), filepath.Join(a.Dir, "missing"), io.Discard, nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("download of a missing file: %v, want fs.ErrNotExist", err)
	}
}

// The client takes long base64 strings out of replies before decoding
// them (liftStrings); replies in another layout, or with escapes, take
// encoding/json's path and must give the same bytes.
func TestReplyLayouts(t *testing.T) {
	tests := []struct {
		name, read, status string
	}{
		{"qemu-ga's layout",
			`{"return": {"count": 3, "buf-b64": "////", "eof": true}}`,
			`{"return": {"exitcode": 0, "out-data": "aGk=", "err-data": "////", "exited": true}}`},
		{"compact",
			`{"return":{"count":3,"buf-b64":"////","eof":true}}`,
			`{"return":{"exitcode":0,"out-data":"aGk=","err-data":"////","exited":true}}`},
		{"escaped slashes",
			`{"return": {"count": 3, "buf-b64": "\/\/\/\/", "eof": true}}`,
			`{"return": {"exitcode": 0, "out-data": "aGk=", "err-data": "\/\/\/\/", "exited": true}}`},
		{"keys in another order",
			`{"return": {"eof": true, "buf-b64": "////", "count": 3}}`,
			`{"return": {"err-data": "////", "exited": true, "out-data": "aGk=", "exitcode": 0}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, func(cmd string, _ json.RawMessage) (map[string]any, bool) {
				switch cmd {
				case "guest-file-open":
					return ok(7), false
				case "guest-file-read":
					return map[string]any{"raw": tt.read}, false
				case "guest-exec":
					return ok(map[string]int{"pid": 9}), false
				case "guest-exec-status":
					return map[string]any{"raw": tt.status}, false
				}
				return ok(map[string]any{}), false
			})
			c := newClient(t, f.Sock, qga.Options{})
			var buf bytes.Buffer
			if _, err := c.Download(context.Background(), "/f", &buf, nil); err != nil || buf.String() != "\xff\xff\xff" {
				t.Errorf("download: %q, %v; want ff ff ff", buf.Bytes(), err)
			}
			res, err := c.Exec(context.Background(), qga.ExecRequest{Path: "/bin/x", Capture: true})
			if err != nil || string(res.Stdout) != "hi" || string(res.Stderr) != "\xff\xff\xff" {
				t.Errorf("exec: %+v, %v; want stdout hi, stderr ff ff ff", res, err)
			}
		})
	}
}
