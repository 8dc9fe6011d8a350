package qemu

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/vmtest"
)

func TestMetaData(t *testing.T) {
	k1 := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOvXx"
	k2 := "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY="
	tests := []struct {
		name string
		keys []string
		want string
	}{
		{"no keys", nil, "instance-id: vm_1\nlocal-hostname: web\n"},
		{"keys", []string{k1, k2}, "instance-id: vm_1\nlocal-hostname: web\npublic-keys:\n  - " + k1 + "\n  - " + k2 + "\n"},
		// Only re-marshalled keys ever get here; anything else is dropped, never written.
		{"unsafe dropped", []string{k1 + "\nruncmd: [x]", "ssh-ed25519 AAAA comment", "x: y", k2},
			"instance-id: vm_1\nlocal-hostname: web\npublic-keys:\n  - " + k2 + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := metaData(Spec{ID: "vm_1", Hostname: "web", SSHKeys: tc.keys})
			if got != tc.want {
				t.Errorf("metaData =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestProvisionSeedWithKeysOnly: keys and no user-data still make a seed,
// whose meta-data lists them and whose user-data is empty.
func TestProvisionSeedWithKeysOnly(t *testing.T) {
	t.Parallel()
	l := vmtest.Layout(t)
	d := newDriver(t, l)
	v := testVM("keys")
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOvXxQ0L5zZm8Kpt2k4mCqfUpXbT0h0W8y3uYwqQ2J1a"
	v.SSHKeys = []string{key}
	if err := d.Provision(context.Background(), v, tinyImage(t)); err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(l.VMDir(v.OwnerID, v.ID), vm.SeedFile)
	meta, err := exec.Command("isoinfo", "-R", "-i", seed, "-x", "/meta-data").Output()
	if err != nil {
		t.Fatalf("isoinfo meta-data: %v", err)
	}
	if want := metaData(v); string(meta) != want {
		t.Fatalf("seed meta-data =\n%s\nwant\n%s", meta, want)
	}
	ud, err := exec.Command("isoinfo", "-R", "-i", seed, "-x", "/user-data").Output()
	if err != nil || len(ud) != 0 {
		t.Fatalf("seed user-data = %q, %v; want empty", ud, err)
	}
}
