// Package web holds vmd's browser pages, built from src/ by `npm run build`
// (esbuild, with noVNC from npm) into dist/, which is committed so that
// `go build ./...` works on a clean clone without node. pkg/server serves it.
package web

import (
	"embed"
	"io/fs"
)

//go:embed dist
var dist embed.FS

// Dist returns the built pages (NAME.html) and their assets (static/…).
func Dist() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}
