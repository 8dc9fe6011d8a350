package server

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/web"
)

// webFile is one embedded page or asset, hashed and compressed once at start.
type webFile struct {
	body  []byte
	gz    []byte // nil when compression does not pay
	etag  string
	ctype string
}

// framing says who a page may frame and who may frame it.
type framing int

const (
	frameNone   framing = iota // frames nothing, framed by no one
	frameSelf                  // may be framed by this origin's pages only (the console in the VM page)
	frameEmbeds                // frames this origin's pages (the VM page)
)

// webPages are the browser pages: route, then the built page it serves.
var webPages = []struct {
	route, page string
	frames      framing
}{
	{"/", "index", frameNone},
	{"/login", "login", frameNone},
	{"/signup", "signup", frameNone},
	{"/verify", "verify", frameNone},
	{"/forgot", "forgot", frameNone},
	{"/reset", "reset", frameNone},
	{"/console/:id", "console", frameSelf},
	{"/vms/:name", "vm", frameEmbeds},
}

// registerWeb serves the pages of package web and their assets under /static/.
// Asset names carry a content hash, so they are cached for a year; pages are
// revalidated on every load (ETag) so a new build's assets show at once.
func (s *Server) registerWeb(e *echo.Echo) error {
	files, err := loadWeb(web.Dist())
	if err != nil {
		return fmt.Errorf("web pages: %w", err)
	}
	for _, p := range webPages {
		f := files[p.page+".html"]
		if f == nil {
			return fmt.Errorf("web pages: %s.html is missing from the build", p.page)
		}
		csp := s.pageCSP(p.frames)
		e.Match([]string{http.MethodGet, http.MethodHead}, p.route, func(c echo.Context) error {
			h := c.Response().Header()
			h.Set("Content-Security-Policy", csp)
			if p.frames == frameSelf {
				h.Set("X-Frame-Options", "SAMEORIGIN") // the CSP's frame-ancestors 'self', for older browsers
			}
			h.Set("Cache-Control", "no-cache")
			return serveWebFile(c, f)
		})
	}
	e.Match([]string{http.MethodGet, http.MethodHead}, "/static/*", func(c echo.Context) error {
		name := path.Clean("/" + c.Param("*"))
		f := files["static"+name]
		if f == nil {
			return &api.StatusError{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: "no such file"}
		}
		c.Response().Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		return serveWebFile(c, f)
	})
	return nil
}

// pageCSP allows only this site's own scripts and styles, and WebSockets to
// the public URL's host, where the console's ws_url points. No page may be
// framed by another origin (clickjacking): the console page only by this
// origin's own VM page, which alone may frame anything (this origin).
func (s *Server) pageCSP(f framing) string {
	ws := "ws" + strings.TrimPrefix(s.origin, "http")
	ancestors, frames := "'none'", ""
	switch f {
	case frameSelf:
		ancestors = "'self'"
	case frameEmbeds:
		frames = "frame-src 'self'; "
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; font-src 'self'; " +
		"connect-src 'self' " + ws + "; " + frames + "base-uri 'none'; form-action 'self'; frame-ancestors " + ancestors
}

func loadWeb(fsys fs.FS) (map[string]*webFile, error) {
	files := map[string]*webFile{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		f := &webFile{body: b, etag: `"` + hex.EncodeToString(sum[:12]) + `"`,
			ctype: mime.TypeByExtension(path.Ext(p))}
		if f.ctype == "" {
			f.ctype = echo.MIMEOctetStream
		}
		if len(b) > 1024 && !strings.HasPrefix(f.ctype, "image/png") {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			_, _ = zw.Write(b)
			_ = zw.Close()
			if buf.Len() < len(b)*9/10 {
				f.gz = buf.Bytes()
			}
		}
		files[p] = f
		return nil
	})
	return files, err
}

func serveWebFile(c echo.Context, f *webFile) error {
	h := c.Response().Header()
	body, etag := f.body, f.etag
	if f.gz != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(c.Request().Header.Get("Accept-Encoding")) {
			body, etag = f.gz, strings.TrimSuffix(f.etag, `"`)+`-gz"`
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("ETag", etag)
	if etagMatch(c.Request().Header.Get("If-None-Match"), etag) {
		h.Del("Content-Encoding")
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, f.ctype, body)
}

func acceptsGzip(ae string) bool {
	for _, part := range strings.Split(ae, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			return strings.ReplaceAll(strings.TrimSpace(params), " ", "") != "q=0"
		}
	}
	return false
}

func etagMatch(inm, etag string) bool {
	for _, t := range strings.Split(inm, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
