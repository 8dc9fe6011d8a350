package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"

	"github.com/vmdhq/vmd/pkg/store"
)

// collectGarbage removes the VM directories under the data dir that no
// record owns, through the driver, so a guest still running from one is
// stopped too. Only a definite "no such VM" removes anything.
func (r *Reconciler) collectGarbage(ctx context.Context) {
	if r.cfg.Layout.DataDir == "" {
		return
	}
	root := filepath.Join(r.cfg.Layout.DataDir, VMsDir)
	owners, err := os.ReadDir(root)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			r.log.Warn("garbage: list vm directories", "dir", root, "err", err)
		}
		return
	}
	for _, o := range owners {
		if !o.IsDir() {
			continue
		}
		dirs, err := os.ReadDir(filepath.Join(root, o.Name()))
		if err != nil {
			r.log.Warn("garbage: list vm directories", "dir", filepath.Join(root, o.Name()), "err", err)
			continue
		}
		for _, d := range dirs {
			if !d.IsDir() {
				continue
			}
			_, err := r.cfg.Store.GetVM(ctx, d.Name())
			if err == nil {
				continue
			}
			if !errors.Is(err, store.ErrNotFound) {
				r.log.Warn("garbage: look up vm", "vm", d.Name(), "err", err)
				continue
			}
			dir := filepath.Join(root, o.Name(), d.Name())
			if err := r.cfg.Driver.Destroy(ctx, GuestSpec{ID: d.Name(), OwnerID: o.Name()}); err != nil {
				r.log.Warn("garbage: remove a vm directory no record owns", "dir", dir, "err", err)
				continue
			}
			r.log.Info("garbage: removed a vm directory no record owns", "dir", dir)
		}
	}
}

// keyedMutex is one mutex per key, kept only while someone holds or waits for it.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

// lock takes key's mutex and returns its unlock.
func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
