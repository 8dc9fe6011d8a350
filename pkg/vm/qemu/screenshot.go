package qemu

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/vmdhq/vmd/pkg/vm"
)

// maxScreenshot bounds what is read back of a screendump: a 4K screen as
// an uncompressed PNG stays well under it.
const maxScreenshot = 64 << 20

// Screenshot returns a PNG of a running guest's screen. QEMU writes it
// (QMP screendump, format png: QEMU 7.1 and later) into the guest's runtime
// dir, from where it is read back and removed.
//
// The runtime dir belongs to the guest's uid, so what is found under the
// name is not trusted: it is opened without following links, must be a
// regular file, and must decode as a PNG before it is handed out. That
// keeps a subverted QEMU from making vmd read another file for it.
func (d *Driver) Screenshot(ctx context.Context, id string) ([]byte, error) {
	g := d.get(id)
	if g == nil || !g.alive() {
		return nil, fmt.Errorf("screenshot %s: %w", id, vm.ErrNotRunning)
	}
	m, err := g.monitor(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("screenshot %s: %w", id, err)
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("screenshot %s: %w", id, err)
	}
	path := filepath.Join(d.cfg.Layout.RuntimeDir(id), "screen-"+hex.EncodeToString(b)+".png")
	defer os.Remove(path)
	if err := m.ExecuteArgs(ctx, "screendump", map[string]any{"filename": path, "format": "png"}); err != nil {
		return nil, fmt.Errorf("screenshot %s: %w", id, err)
	}
	out, err := readPNG(path)
	if err != nil {
		return nil, fmt.Errorf("screenshot %s: %w", id, err)
	}
	return out, nil
}

// readPNG reads a file the guest's QEMU wrote, refusing links, non-regular
// files and anything that is not a PNG.
func readPNG(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("screendump is not a regular file")
	}
	out, err := io.ReadAll(io.LimitReader(f, maxScreenshot+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxScreenshot {
		return nil, errors.New("screendump is too large")
	}
	if _, err := png.DecodeConfig(bytes.NewReader(out)); err != nil {
		return nil, fmt.Errorf("screendump is not a png: %w", err)
	}
	return out, nil
}
