package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
)

// TestWebSocketRefusal: a refused WebSocket (console, serial, port-forward
// share one dial) is the server's API error, named after the stream, and
// the bearer token went along.
func TestWebSocketRefusal(t *testing.T) {
	srv, rec := newServer(t, 403, `{"error":{"code":"invalid_token","message":"console token is invalid, used or expired: ask for a new one","request_id":"r1"}}`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := New(srv.URL, "tok")
	_, err := c.DialStreamURL(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+api.BasePath+"/vms/vm_1/portforward?port=80&token=x")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 403 || ae.Code != api.CodeInvalidToken || ae.RequestID != "r1" {
		t.Fatalf("err = %#v, want the server's 403 invalid_token", err)
	}
	if !strings.HasPrefix(err.Error(), "port-forward: console token is invalid") {
		t.Fatalf("err = %q", err)
	}
	if rec.Auth != "Bearer tok" {
		t.Fatalf("Authorization %q", rec.Auth)
	}
}
