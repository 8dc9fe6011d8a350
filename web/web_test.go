package web

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// inputsHash mirrors build.mjs: the sources, the build script and the lock file.
func inputsHash(t *testing.T) string {
	t.Helper()
	files := []string{"build.mjs", "package-lock.json"}
	err := filepath.WalkDir("src", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, filepath.ToSlash(p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		h.Write([]byte(f + "\x00"))
		h.Write(b)
		h.Write([]byte("\x00"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestDistFresh fails when web/src changed without a rebuild of the
// committed dist/ (`make web`), so the binary never serves stale pages.
func TestDistFresh(t *testing.T) {
	b, err := fs.ReadFile(Dist(), "manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Inputs string            `json:"inputs"`
		Assets map[string]string `json:"assets"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if got := inputsHash(t); got != m.Inputs {
		t.Fatalf("web/dist is stale (sources %s, dist built from %s): run `make web` and commit web/dist", got[:12], m.Inputs[:12])
	}
	for _, page := range []string{"index", "login", "signup", "verify", "forgot", "reset", "console"} {
		html, err := fs.ReadFile(Dist(), page+".html")
		if err != nil {
			t.Fatal(err)
		}
		for _, asset := range []string{m.Assets[page+".js"], m.Assets["style.css"]} {
			if asset == "" || !strings.Contains(string(html), `"`+asset+`"`) {
				t.Errorf("%s.html does not reference %q", page, asset)
			}
			if _, err := fs.Stat(Dist(), strings.TrimPrefix(asset, "/")); err != nil {
				t.Errorf("%s.html: asset %s: %v", page, asset, err)
			}
		}
	}
}
