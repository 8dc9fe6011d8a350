package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
)

// testPub is a new random public key in authorized_keys form.
func testPub(t *testing.T) string { return testutil.SSHPublicKey(t) }

func TestWriteKnownHosts(t *testing.T) {
	dir := t.TempDir()
	a, b := testPub(t), testPub(t)
	p, err := writeKnownHosts(dir, "vm_01abc", []string{a + " root@guest", b})
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(dir, "known_hosts.d", "vm_01abc") {
		t.Fatalf("path %s", p)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := "vm_01abc " + a + "\nvm_01abc " + b + "\n"; string(got) != want {
		t.Fatalf("known_hosts =\n%s\nwant\n%s", got, want)
	}
	// Refused: anything but a plain key, and ids that are not one file name.
	for _, bad := range [][]string{{"@cert-authority * " + a}, {"x " + a}, {a + "\nevil " + b}, {`command="x" ` + a}} {
		if _, err := writeKnownHosts(dir, "vm_01abc", bad); err == nil {
			t.Errorf("writeKnownHosts(%q) accepted", bad)
		}
	}
	for _, id := range []string{"", "../x", "a/b", ".hidden", "a b", "*"} {
		if _, err := writeKnownHosts(dir, id, []string{a}); err == nil {
			t.Errorf("vm id %q accepted", id)
		}
	}
	// The refusals left the file as it was; no keys removes it.
	if got2, _ := os.ReadFile(p); string(got2) != string(got) {
		t.Fatalf("file changed by a refused write: %s", got2)
	}
	if _, err := writeKnownHosts(dir, "vm_01abc", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("known_hosts after no keys: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "known_hosts.d"))
	if len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}

func TestReadKeyFile(t *testing.T) {
	dir := t.TempDir()
	a, b := testPub(t), testPub(t)
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, content string
		want          int
		wantErr       string
	}{
		{"one.pub", a + " me@x\n", 1, ""},
		{"two", "# mine\n\n" + a + "\n" + b + "\n", 2, ""},
		{"empty", "\n# nothing\n", 0, "no public key"},
		{"id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n", 0, "private key"},
		{"big", strings.Repeat("x", maxKeyFile+1), 0, "KiB"},
	}
	for _, c := range cases {
		ios, _, _, _ := TestStreams()
		keys, err := readKeyFile(ios, write(c.name, c.content))
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.wantErr)
			}
			continue
		}
		if err != nil || len(keys) != c.want {
			t.Errorf("%s: %d keys, %v; want %d", c.name, len(keys), err, c.want)
		}
	}
	ios, in, _, _ := TestStreams()
	in.WriteString(a + "\n")
	if keys, err := readKeyFile(ios, "-"); err != nil || len(keys) != 1 || keys[0] != a {
		t.Fatalf("stdin: %q, %v", keys, err)
	}
}

// TestSSHKeyRun runs add, list and delete against a small stand-in for
// vmd's /me/ssh-keys, checking what is sent and what is printed.
func TestSSHKeyRun(t *testing.T) {
	var posted api.SSHKeyRequest
	var deleted string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/me/ssh-keys", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewDecoder(r.Body).Decode(&posted)
		if strings.HasPrefix(posted.Key, "bad") {
			w.WriteHeader(422)
			_, _ = io.WriteString(w, `{"error":{"code":"validation_failed","message":"key: invalid ssh public key","field":"key"}}`)
			return
		}
		writeJSONResp(w, 201, api.SSHKey{Name: "laptop", Key: posted.Key, Fingerprint: "SHA256:abc", CreatedAt: fakeNow})
	})
	mux.HandleFunc("GET /api/v1/me/ssh-keys", func(w http.ResponseWriter, r *http.Request) {
		writeJSONResp(w, 200, []api.SSHKey{{Name: "laptop", Key: "ssh-ed25519 AAAA x", Fingerprint: "SHA256:abc", CreatedAt: fakeNow}})
	})
	mux.HandleFunc("DELETE /api/v1/me/ssh-keys/{name}", func(w http.ResponseWriter, r *http.Request) {
		deleted = r.PathValue("name")
		w.WriteHeader(204)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	key := testPub(t)
	file := filepath.Join(t.TempDir(), "id.pub")
	if err := os.WriteFile(file, []byte(key+" me@x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	newOpts := func() (*SSHKeyOptions, *bytes.Buffer, *bytes.Buffer) {
		ios, _, out, errOut := TestStreams()
		return &SSHKeyOptions{IO: ios, Now: func() time.Time { return fakeNow },
			Client: func() (*client.Client, error) { return client.New(srv.URL, "tok"), nil }}, out, errOut
	}
	ctx := context.Background()

	opts, out, errOut := newOpts()
	opts.File, opts.Name = file, "laptop"
	if err := sshKeyAddRun(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if posted.Name != "laptop" || posted.Key != key+" me@x" || out.Len() != 0 || !strings.Contains(errOut.String(), "SHA256:abc") {
		t.Fatalf("add sent %+v, printed %q / %q", posted, out, errOut)
	}
	opts, _, _ = newOpts()
	opts.File = filepath.Join(t.TempDir(), "bad.pub")
	_ = os.WriteFile(opts.File, []byte("bad key\n"), 0o600)
	var ae *client.APIError
	if err := sshKeyAddRun(ctx, opts); !errors.As(err, &ae) || ae.Status != 422 {
		t.Fatalf("bad key: %v, want the server's 422", err)
	}

	opts, out, _ = newOpts()
	opts.Output = formatName
	if err := sshKeyListRun(ctx, opts); err != nil || out.String() != "laptop\n" {
		t.Fatalf("list -o name = %q, %v", out, err)
	}
	opts, out, _ = newOpts()
	if err := sshKeyListRun(ctx, opts); err != nil || !strings.Contains(out.String(), "laptop\tssh-ed25519\tSHA256:abc") {
		t.Fatalf("list table = %q, %v", out, err)
	}
	opts, _, _ = newOpts()
	opts.Name = "laptop"
	if err := sshKeyDeleteRun(ctx, opts); err != nil || deleted != "laptop" {
		t.Fatalf("delete: %v, server saw %q", err, deleted)
	}
}
