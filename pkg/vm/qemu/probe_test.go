package qemu

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/vm/vmtest"
)

func needQEMU(t testing.TB) { vmtest.NeedQEMU(t) }

func TestProbeGuestTCG(t *testing.T) {
	needQEMU(t)
	start := time.Now()
	if err := probeGuest(context.Background(), "qemu-system-x86_64", "tcg"); err != nil {
		t.Fatal(err)
	}
	t.Logf("tcg probe guest printed after %v", time.Since(start))
}

func TestProbeAccel(t *testing.T) {
	needQEMU(t)
	tests := []struct {
		requested string
		want      []string // acceptable choices: this host's KVM may or may not work
		wantErr   bool
	}{
		{"tcg", []string{"tcg"}, false},
		{"auto", []string{"kvm", "tcg"}, false},
		{"", []string{"kvm", "tcg"}, false},
		{"xen", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.requested, func(t *testing.T) {
			start := time.Now()
			got, reason, err := ProbeAccel(context.Background(), tc.requested)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if err == nil && !strings.Contains(strings.Join(tc.want, " "), got) {
				t.Fatalf("chose %q, want one of %v", got, tc.want)
			}
			if d := time.Since(start); d > 6*time.Second {
				t.Errorf("probe took %v", d)
			}
			t.Logf("%q -> %q (%s)", tc.requested, got, reason)
		})
	}
}
