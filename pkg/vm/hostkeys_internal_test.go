package vm

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// The tiny image prints one line per host key, seconds apart on a loaded
// machine, then its done line: each pass records what the log holds so far,
// and stops reading once the report is complete. (Recording only at the
// first key line once lost the second key for the whole launch.)
func TestLearnHostKeysUntilComplete(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		ctx := context.Background()
		v := storedVM(t, st, "u_keys", api.StateRunning)
		l := Layout{DataDir: t.TempDir()}
		serial := l.VMFile(v.OwnerID, v.ID, SerialFile)
		if err := os.MkdirAll(filepath.Dir(serial), 0o700); err != nil {
			t.Fatal(err)
		}
		r := NewReconciler(ReconcilerConfig{Store: st, Layout: l})
		k1, k2, k3 := testutil.SSHPublicKey(t), testutil.SSHPublicKey(t), testutil.SSHPublicKey(t)
		pass := func(log string) []string {
			t.Helper()
			if err := os.WriteFile(serial, []byte(log), 0o600); err != nil {
				t.Fatal(err)
			}
			cur, err := st.GetVM(ctx, v.ID)
			if err != nil {
				t.Fatal(err)
			}
			r.learnHostKeys(ctx, &cur)
			cur, err = st.GetVM(ctx, v.ID)
			if err != nil {
				t.Fatal(err)
			}
			return cur.HostKeys
		}
		boot := "vmd-tiny: booted\n"
		steps := []struct {
			name, log string
			want      []string
		}{
			{"nothing printed", boot, nil},
			{"first key line", boot + "vmd-tiny: hostkey " + k1 + "\n", []string{k1}},
			{"second key line", boot + "vmd-tiny: hostkey " + k1 + "\nvmd-tiny: hostkey " + k2 + "\n", []string{k1, k2}},
			{"done", boot + "vmd-tiny: hostkey " + k1 + "\nvmd-tiny: hostkey " + k2 + "\nvmd-tiny: hostkeys done\n", []string{k1, k2}},
			// Complete: later lines this launch are not read (a guest cannot swap its keys).
			{"after done", boot + "vmd-tiny: hostkey " + k3 + "\nvmd-tiny: hostkeys done\n", []string{k1, k2}},
		}
		for _, s := range steps {
			if got := pass(s.log); !slices.Equal(got, s.want) {
				t.Fatalf("%s: host keys %q, want %q", s.name, got, s.want)
			}
		}
		// A new launch reads again.
		r.forgetHostKeysRead(v.ID)
		if got := pass(boot + "vmd-tiny: hostkey " + k3 + "\nvmd-tiny: hostkeys done\n"); !slices.Equal(got, []string{k3}) {
			t.Fatalf("after a new launch: %q, want %q", got, []string{k3})
		}
	})
}
