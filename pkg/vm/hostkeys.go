package vm

import (
	"context"
	"os"
	"slices"

	"github.com/vmdhq/vmd/pkg/sshkey"
	"github.com/vmdhq/vmd/pkg/store"
)

// learnHostKeys reads the SSH host keys a running guest printed on its
// serial console and records them: each pass reads the log again (bounded
// by sshkey.MaxSerialRead) and records what it holds so far, until the
// guest's report is complete, then not until the next launch. (Recording
// only at the first key line lost the tiny image's second key, printed
// seconds later under load.) The guest writes that log, so
// sshkey.HostKeys trusts nothing in it beyond well-formed public keys.
func (r *Reconciler) learnHostKeys(ctx context.Context, v *store.VM) {
	if r.cfg.Layout.DataDir == "" {
		return
	}
	r.mu.Lock()
	done := r.hostKeysRead[v.ID]
	r.mu.Unlock()
	if done {
		return
	}
	f, err := os.Open(r.cfg.Layout.VMFile(v.OwnerID, v.ID, SerialFile))
	if err != nil {
		return // not there yet
	}
	keys, found := sshkey.HostKeys(f)
	f.Close()
	if !found && len(keys) == 0 {
		return // nothing this launch yet: the last launch's keys stay
	}
	if !slices.Equal(keys, v.HostKeys) {
		if err := r.cfg.Store.SetHostKeys(ctx, v.ID, keys); err != nil {
			if ctx.Err() == nil {
				r.log.Warn("reconcile: record host keys", "vm", v.ID, "err", err)
			}
			return
		}
		v.HostKeys = keys
		r.log.Info("reconcile: guest reported its ssh host keys", "vm", v.ID, "keys", len(keys), "complete", found)
	}
	if !found {
		return
	}
	r.mu.Lock()
	r.hostKeysRead[v.ID] = true
	r.mu.Unlock()
}

// forgetHostKeysRead makes the next passes read the guest's report again
// (a new launch prints it again, maybe with new keys).
func (r *Reconciler) forgetHostKeysRead(id string) {
	r.mu.Lock()
	delete(r.hostKeysRead, id)
	r.mu.Unlock()
}
