package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// TestCIScript runs testdata/ci-job.sh, a bash CI job that drives vmctl
// with no terminal and no config file against a real vmd and real guest,
// checking exit codes as it goes.
func TestCIScript(t *testing.T) {
	parallel(t, 1)
	v := startVMD(t, storetest.Backends()[0])
	token := bearerToken(t, v, "ci@example.com")
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join("testdata", "ci-job.sh"))
	cmd.Env = []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"VMCTL_SERVER=" + v.URL, "VMCTL_TOKEN=" + token}
	// stdin stays nil: /dev/null, as under a CI runner
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if code := exitCode(t, err); code != 0 {
		t.Fatalf("ci-job.sh exited %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); lines[len(lines)-1] != "PASS" {
		t.Fatalf("ci-job.sh did not print PASS last:\n%s\nstderr:\n%s", out.String(), errb.String())
	}
	if _, err := os.Stat(filepath.Join(home, ".config", "vmctl")); !os.IsNotExist(err) {
		t.Errorf("the job wrote a vmctl config (%v); it must run from the environment alone", err)
	}
}
