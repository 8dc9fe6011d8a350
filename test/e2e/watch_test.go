package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// TestListWatch follows a VM's life in `vmctl list --watch` against a real
// vmd: its rows come from the change feed, from provisioning to deleted.
func TestListWatch(t *testing.T) {
	parallel(t, 1)
	b := storetest.Backends()[0] // SQLite; the feed's SQL is shared, and the server tests run both
	v := startVMD(t, b)
	c := loggedIn(t, v, "grace@example.com")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	watch := exec.CommandContext(ctx, filepath.Join(binDir, "vmctl"), "list", "--watch")
	watch.Env = c.env
	out, errOut := &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	watch.Stdout, watch.Stderr = out, errOut
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- watch.Wait() }()
	defer func() {
		if watch.ProcessState == nil {
			_ = watch.Process.Kill()
		}
	}()
	// The watch opens the feed before it lists, so once vmd has logged the
	// list, everything after it is on the feed.
	testutil.Eventually(t, 30*time.Second, "the watch's list request", func() bool {
		return strings.Contains(v.log.String(), "method=GET path=/api/v1/vms ")
	})

	c.must(0, "", "create", "web", "--template", "tiny", "--memory", "128", "--wait", "--timeout", "2m")
	want := []string{"web\tprovisioning\t", "web\tstarting\t", "web\trunning\t"}
	testutil.Eventually(t, 30*time.Second, "provisioning, starting and running rows", func() bool { return inOrder(out.String(), want) })

	// A wait that cannot be met ends in exit 6, on the feed as on polls.
	c.must(6, "", "wait", "web", "--for", "state=stopped", "--timeout", "2s")

	c.must(0, "", "delete", "web", "--yes", "--wait", "--timeout", "2m")
	want = append(want, "web\tdeleting\t", "web\tdeleted\t")
	testutil.Eventually(t, 30*time.Second, "deleting and deleted rows", func() bool { return inOrder(out.String(), want) })

	// An interrupted watch is a watch that ended as asked.
	if err := watch.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if code := exitCode(t, err); code != 0 {
			t.Fatalf("vmctl list --watch exit %d after SIGINT\nstdout: %s\nstderr: %s", code, out, errOut)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("vmctl list --watch did not end on SIGINT\nstdout: %s", out)
	}
}

// inOrder reports whether s holds every part, each after the one before.
func inOrder(s string, parts []string) bool {
	for _, p := range parts {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return true
}
