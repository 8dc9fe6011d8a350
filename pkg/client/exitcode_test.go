package client_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/vmdhq/vmd/pkg/cli"
	"github.com/vmdhq/vmd/pkg/client"
)

// TestExitCodes follows an error answer from the wire through the rebuilt
// *client.APIError to vmctl's exit status, as docs/API.md lists them.
func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   int
	}{
		{"quota exceeded", 403, `{"error":{"code":"quota_exceeded","message":"memory: 10000000 MB asked, 8064 MB left of 8192"}}`, cli.ExitQuotaOrClash},
		{"conflict", 409, `{"error":{"code":"conflict","message":"a VM named web already exists"}}`, cli.ExitQuotaOrClash},
		{"validation", 422, `{"error":{"code":"validation_failed","message":"cpu: must be between 1 and 64"}}`, cli.ExitError},
		{"bad request", 400, `{"error":{"code":"bad_request","message":"invalid JSON body"}}`, cli.ExitError},
		{"too large", 413, `{"error":{"code":"request_too_large","message":"request body too large"}}`, cli.ExitError},
		{"not found", 404, `{"error":{"code":"not_found","message":"not found"}}`, cli.ExitNotFound},
		{"unauthenticated", 401, `{"error":{"code":"unauthenticated","message":"log in"}}`, cli.ExitAuth},
		{"forbidden", 403, `{"error":{"code":"forbidden","message":"needs an admin"}}`, cli.ExitAuth},
		{"rate limited", 429, `{"error":{"code":"rate_limited","message":"later"}}`, cli.ExitError},
		{"database unavailable", 503, `{"error":{"code":"unavailable","message":"the database is unreachable"}}`, cli.ExitError},
		{"node unreachable", 502, `{"error":{"code":"unavailable","message":"node b is unreachable"}}`, cli.ExitError},
		{"no capacity", 503, `{"error":{"code":"no_capacity","message":"no node has room"}}`, cli.ExitError},
		{"internal", 500, `{"error":{"code":"internal_error","message":"internal error (request id x)"}}`, cli.ExitError},
		{"proxy html 502", 502, `<html>bad gateway</html>`, cli.ExitError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			_, err := client.New(srv.URL, "t").GetVM(context.Background(), "web")
			if got := cli.ExitCode(err); got != tc.want {
				t.Fatalf("exit %d for %v, want %d", got, err, tc.want)
			}
		})
	}
}
