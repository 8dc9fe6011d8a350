package server_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/vmdhq/vmd/pkg/server"
)

func newPageServer(t *testing.T, publicURL string) *httptest.Server {
	t.Helper()
	s, err := server.New(server.Config{PublicURL: publicURL, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return hs
}

func fetchWeb(t *testing.T, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	// A bare transport: the default one asks for gzip and unpacks it unseen.
	res, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

var assetRef = regexp.MustCompile(`"(/static/[^"]+)"`)

func TestPages(t *testing.T) {
	t.Parallel()
	hs := newPageServer(t, "https://vmd.example.com")
	tests := []struct {
		path string
		want string // text only this page has
	}{
		{"/", `id="vm-table"`},
		{"/login", `id="login-form"`},
		{"/signup", `id="signup-form"`},
		{"/verify?token=abc", `id="verify-status"`},
		{"/forgot", `id="forgot-form"`},
		{"/reset?token=abc", `id="reset-form"`},
		{"/console/vm_01ABC", `id="screen"`},
		{"/vms/web", `id="vm-console-frame"`},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			res, body := fetchWeb(t, hs.URL+tc.path, nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type = %q", ct)
			}
			if !bytes.Contains(body, []byte(tc.want)) {
				t.Errorf("page lacks %s", tc.want)
			}
			csp := res.Header.Get("Content-Security-Policy")
			// Only the console page may be framed, and only by this origin
			// (the VM page embeds it); only the VM page frames anything.
			ancestors, xfo := "frame-ancestors 'none'", "DENY"
			if strings.HasPrefix(tc.path, "/console/") {
				ancestors, xfo = "frame-ancestors 'self'", "SAMEORIGIN"
			}
			if strings.HasPrefix(tc.path, "/vms/") != strings.Contains(csp, "frame-src 'self';") {
				t.Errorf("CSP %q: frame-src on the wrong page", csp)
			}
			for _, want := range []string{"default-src 'none'", "script-src 'self';", "style-src 'self';",
				"connect-src 'self' wss://vmd.example.com;", ancestors, "base-uri 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe") {
				t.Errorf("CSP allows unsafe sources: %q", csp)
			}
			if got := res.Header.Get("X-Frame-Options"); got != xfo {
				t.Errorf("X-Frame-Options = %q", got)
			}
			if got := res.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("Cache-Control = %q", got)
			}
			// With no inline script allowed, a page must carry none.
			if bytes.Contains(body, []byte("<script>")) || bytes.Contains(body, []byte(" style=")) || bytes.Contains(body, []byte(" onclick=")) {
				t.Error("page has inline script or style, which the CSP blocks")
			}
			refs := assetRef.FindAllSubmatch(body, -1)
			if len(refs) < 2 {
				t.Fatalf("page references %d assets, want script and style", len(refs))
			}
			for _, m := range refs {
				if r, b := fetchWeb(t, hs.URL+string(m[1]), nil); r.StatusCode != http.StatusOK || len(b) == 0 {
					t.Errorf("asset %s: %d", m[1], r.StatusCode)
				}
			}
		})
	}
}

func TestStaticCaching(t *testing.T) {
	t.Parallel()
	hs := newPageServer(t, "http://127.0.0.1:8080")
	_, page := fetchWeb(t, hs.URL+"/console/x", nil)
	var js string
	for _, m := range assetRef.FindAllSubmatch(page, -1) {
		if strings.HasSuffix(string(m[1]), ".js") {
			js = string(m[1])
		}
	}
	if !regexp.MustCompile(`^/static/console-[A-Z0-9]{8}\.js$`).MatchString(js) {
		t.Fatalf("console script %q has no content hash in its name", js)
	}

	res, plain := fetchWeb(t, hs.URL+js, nil)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("GET %s: %d %s", js, res.StatusCode, res.Header.Get("Content-Type"))
	}
	if got := res.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
		t.Errorf("Cache-Control = %q", got)
	}
	etag := res.Header.Get("ETag")
	if etag == "" || res.Header.Get("Content-Encoding") != "" {
		t.Fatalf("ETag %q, Content-Encoding %q", etag, res.Header.Get("Content-Encoding"))
	}
	// The bundle carries noVNC.
	if !bytes.Contains(plain, []byte("RFB")) {
		t.Error("console bundle does not contain noVNC")
	}

	res, _ = fetchWeb(t, hs.URL+js, map[string]string{"If-None-Match": etag})
	if res.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", res.StatusCode)
	}

	res, gz := fetchWeb(t, hs.URL+js, map[string]string{"Accept-Encoding": "br, gzip"})
	if res.Header.Get("Content-Encoding") != "gzip" || res.Header.Get("ETag") == etag || len(gz) >= len(plain) {
		t.Fatalf("gzip: encoding %q, etag %q, %d of %d bytes", res.Header.Get("Content-Encoding"), res.Header.Get("ETag"), len(gz), len(plain))
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	unz, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(unz, plain) {
		t.Fatalf("gzip body does not unpack to the plain one (%v)", err)
	}
	if !strings.Contains(res.Header.Get("Vary"), "Accept-Encoding") {
		t.Errorf("Vary = %q", res.Header.Get("Vary"))
	}

	for _, p := range []string{"/static/nothing.js", "/static/../index.html", "/static/%2e%2e/index.html", "/static/"} {
		if res, _ := fetchWeb(t, hs.URL+p, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, res.StatusCode)
		}
	}
}
