package vm

import (
	"errors"
	"testing"

	"github.com/vmdhq/vmd/pkg/api"
)

func TestTemplateMemory(t *testing.T) {
	deb := api.Template{Name: "debian-12", MinMemoryMB: 1024}
	tests := []struct {
		name              string
		t                 api.Template
		asked, normalized int
		want              int
		wantErr           bool
	}{
		{"no minimum", api.Template{Name: "tiny"}, 0, api.DefaultMemoryMB, api.DefaultMemoryMB, false},
		{"default raised to the minimum", deb, 0, api.DefaultMemoryMB, 1024, false},
		{"asked above", deb, 2048, 2048, 2048, false},
		{"asked exactly", deb, 1024, 1024, 1024, false},
		{"asked below refused", deb, 512, 512, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := templateMemory(tc.t, tc.asked, tc.normalized)
			var ve *ValidationError
			if tc.wantErr {
				if !errors.As(err, &ve) || ve.Field != "memory_mb" {
					t.Fatalf("err = %v, want a memory_mb validation error", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("templateMemory = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}
