package cli

import (
	"context"
	"reflect"
	"testing"
)

func TestParseSnapshot(t *testing.T) {
	tests := []struct {
		name    string
		argv    []string
		want    SnapshotOptions
		wantErr bool
	}{
		{"create", []string{"create", "web", "s1"}, SnapshotOptions{Action: "create", VM: "web", Snap: "s1", Keep: -1, Output: "table"}, false},
		{"create memory keep", []string{"create", "web", "s1", "--memory", "--keep", "3", "-o", "json"},
			SnapshotOptions{Action: "create", VM: "web", Snap: "s1", Memory: true, Keep: 3, Output: "json"}, false},
		{"keep 0 clears", []string{"create", "web", "s1", "--keep", "0"}, SnapshotOptions{Action: "create", VM: "web", Snap: "s1", Keep: 0, Output: "table"}, false},
		{"list", []string{"list", "web", "-o", "yaml"}, SnapshotOptions{Action: "list", VM: "web", Keep: -1, Output: "yaml"}, false},
		{"restore", []string{"restore", "web", "s1"}, SnapshotOptions{Action: "restore", VM: "web", Snap: "s1", Keep: -1, Output: "table"}, false},
		{"delete", []string{"delete", "web", "s1"}, SnapshotOptions{Action: "delete", VM: "web", Snap: "s1", Keep: -1}, false},
		{"create without snapshot", []string{"create", "web"}, SnapshotOptions{}, true},
		{"negative keep", []string{"create", "web", "s1", "--keep", "-2"}, SnapshotOptions{}, true},
		{"memory on restore", []string{"restore", "web", "s1", "--memory"}, SnapshotOptions{}, true},
		{"list too many", []string{"list", "web", "s1"}, SnapshotOptions{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parsedOptions(t, NewCmdSnapshot, tt.wantErr, tt.argv...)
			if tt.wantErr {
				return
			}
			g := *got
			g.IO, g.Client, g.Now = nil, nil, nil
			if !reflect.DeepEqual(g, tt.want) {
				t.Errorf("got %+v\nwant %+v", g, tt.want)
			}
		})
	}
}

func TestParseCreateFrom(t *testing.T) {
	var got *CreateOptions
	if err := parse(t, NewCmdCreate(newTestEnv(t).f, func(_ context.Context, o *CreateOptions) error { got = o; return nil }),
		"copy", "--from", "web@s1"); err != nil {
		t.Fatal(err)
	}
	if got.From != "web@s1" || got.Template != "" {
		t.Fatalf("create --from: %+v", got)
	}
}
