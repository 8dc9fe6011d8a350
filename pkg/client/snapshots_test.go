package client

import (
	"context"
	"testing"

	"github.com/vmdhq/vmd/pkg/api"
)

func TestSnapshotCalls(t *testing.T) {
	ctx := context.Background()
	const snapJSON = `{"name":"s1","consistency":"crash","memory":false,"size_gb":1,"created_at":"2030-01-01T00:00:00Z"}`
	keep := 3
	tests := []struct {
		name, body         string
		status             int
		call               func(c *Client) (any, error)
		method, path, want string
	}{
		{"list", "[" + snapJSON + "]", 200, func(c *Client) (any, error) { return c.ListSnapshots(ctx, "web") },
			"GET", "/api/v1/vms/web/snapshots", ""},
		{"create", snapJSON, 201, func(c *Client) (any, error) {
			return c.CreateSnapshot(ctx, "web", api.CreateSnapshotRequest{Name: "s1", Memory: true, Keep: &keep})
		}, "POST", "/api/v1/vms/web/snapshots", `{"name":"s1","memory":true,"keep":3}`},
		{"restore escapes", `{"id":"vm_1","name":"web"}`, 202, func(c *Client) (any, error) { return c.RestoreSnapshot(ctx, "web", "a/b") },
			"POST", "/api/v1/vms/web/snapshots/a%2Fb/restore", ""},
		{"delete", "", 204, func(c *Client) (any, error) { return nil, c.DeleteSnapshot(ctx, "web", "s1") },
			"DELETE", "/api/v1/vms/web/snapshots/s1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, rec := newServer(t, tt.status, tt.body)
			got, err := tt.call(New(srv.URL, "tkn"))
			if err != nil {
				t.Fatal(err)
			}
			if rec.Method != tt.method || rec.RawPath != tt.path {
				t.Errorf("request %s %s, want %s %s", rec.Method, rec.RawPath, tt.method, tt.path)
			}
			if tt.want != "" && rec.Body != tt.want {
				t.Errorf("body %s, want %s", rec.Body, tt.want)
			}
			if l, ok := got.([]api.Snapshot); ok && (len(l) != 1 || l[0].Name != "s1" || l[0].Consistency != "crash") {
				t.Errorf("list decoded as %+v", l)
			}
		})
	}
}
