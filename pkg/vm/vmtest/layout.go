package vmtest

import (
	"testing"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/vm"
)

// Layout makes a VM layout on fresh data and run dirs, removed when the test
// ends, that QEMU's unprivileged user can reach and whose socket paths are
// short enough for sun_path.
func Layout(t testing.TB) vm.Layout {
	t.Helper()
	return vm.Layout{DataDir: testutil.ReachableDir(t, "vmd-data-"), RunDir: testutil.ReachableDir(t, "vmd-run-")}
}
