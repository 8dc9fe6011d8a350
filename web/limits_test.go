package web

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/vmdhq/vmd/pkg/api"
)

// TestFormLimitsMatchAPI: the create form checks sizes before sending with
// src/limits.js, which must say what the server enforces.
func TestFormLimitsMatchAPI(t *testing.T) {
	src, err := os.ReadFile("src/limits.js")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]int{
		"cpu":       {1, api.MaxCPU},
		"memory_mb": {api.MinMemoryMB, api.MaxMemoryMB},
		"disk_gb":   {1, api.MaxDiskGB},
	}
	for field, w := range want {
		m := regexp.MustCompile(field + `: \{ min: (\d+), max: (\d+) \}`).FindStringSubmatch(string(src))
		if m == nil {
			t.Errorf("src/limits.js has no %s limits", field)
			continue
		}
		lo, _ := strconv.Atoi(m[1])
		hi, _ := strconv.Atoi(m[2])
		if lo != w[0] || hi != w[1] {
			t.Errorf("src/limits.js %s = %d..%d, the API allows %d..%d", field, lo, hi, w[0], w[1])
		}
	}
}
