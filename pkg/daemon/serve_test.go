package daemon

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

// TestServeRefusesBadRestartPolicy: a restart policy Serve cannot parse
// (a Config not made by the flags) is an error, not a silent default.
func TestServeRefusesBadRestartPolicy(t *testing.T) {
	runDir, err := os.MkdirTemp("", "vmd-run-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(runDir) })
	cfg, err := settingsFor(t, []string{"--data-dir", t.TempDir(), "--run-dir", runDir, "--accel", "tcg",
		"--listen", "127.0.0.1:0", "--node-name", "t"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.RestartPolicy = "sometimes"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = Serve(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "restart policy") || ctx.Err() != nil {
		t.Fatalf("Serve with restart policy %q: %v (context: %v)", cfg.RestartPolicy, err, ctx.Err())
	}
}
