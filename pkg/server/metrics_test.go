package server_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/server"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// TestMetricsAndLogBounded: unauthenticated junk (3,000 made-up methods,
// made-up paths, a 500 KB method) folds into fixed label values, so
// /metrics stays small, and no access-log line grows with the request.
func TestMetricsAndLogBounded(t *testing.T) {
	t.Parallel()
	logs := &testutil.SyncBuffer{}
	e := newEnvWith(t, storetest.Backends()[0], func(c *server.Config) {
		c.Log = slog.New(slog.NewJSONHandler(logs, nil))
	})
	send := func(method, path string, hdr map[string]string) {
		t.Helper()
		req, err := http.NewRequest(method, e.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatalf("%.40s %s: %v", method, path, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	metricsSize := func() (int, string) {
		t.Helper()
		res, err := e.srv.Client().Get(e.srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return len(b), string(b)
	}
	send("GET", "/healthz", nil)
	before, _ := metricsSize()

	for i := 0; i < 3000; i++ {
		send(fmt.Sprintf("JUNK%04d", i), "/api/v1/vms", nil)
	}
	for i := 0; i < 500; i++ {
		send("GET", fmt.Sprintf("/api/v1/junk%04d", i), nil)
		send("GET", fmt.Sprintf("/no/such/page/%04d", i), nil)
	}
	long := strings.Repeat("M", 500<<10)
	send(long, "/api/v1/vms", map[string]string{"User-Agent": strings.Repeat("u", 100<<10)})
	send("GET", "/api/v1/"+strings.Repeat("p", 200<<10), nil)

	after, body := metricsSize()
	t.Logf("/metrics: %d bytes before, %d after", before, after)
	if after > before+16<<10 {
		t.Fatalf("/metrics grew from %d to %d bytes", before, after)
	}
	if strings.Contains(body, "JUNK") || strings.Contains(body, "junk") || strings.Contains(body, "MMMM") {
		t.Fatal("a caller's method or path became a label value")
	}
	for _, want := range []string{`method="other"`, `route="unmatched"`} {
		if !strings.Contains(body, want) {
			t.Fatalf("no %s series in /metrics", want)
		}
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) < 4000 {
		t.Fatalf("%d log lines, want one a request", len(lines))
	}
	for _, l := range lines {
		if len(l) > 2048 {
			t.Fatalf("log line of %d bytes: %.200s…", len(l), l)
		}
	}
}
