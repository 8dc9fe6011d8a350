package vm_test

import (
	"reflect"
	"testing"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
)

// TestSpecOf: the driver is told about a VM through its own spec, filled
// from the record in one place; a field added to GuestSpec and not filled
// there fails here.
func TestSpecOf(t *testing.T) {
	v := store.VM{ID: "vm_1", OwnerID: "u_1", Name: "web", Template: "tiny", CPU: 2, MemoryMB: 256, DiskGB: 3,
		UserData: "#cloud-config\n", Node: "n1", State: api.StateRunning, Desired: api.DesiredRunning,
		SSHKeys: []string{"ssh-ed25519 AAAA"},
		Network: api.NetworkNAT}
	want := vm.GuestSpec{ID: "vm_1", OwnerID: "u_1", Hostname: "web", CPU: 2, MemoryMB: 256, DiskGB: 3,
		UserData: "#cloud-config\n", ReadyLine: vm.DefaultReadyLine, SSHKeys: []string{"ssh-ed25519 AAAA"}, Network: api.NetworkNAT}
	got := vm.SpecOf(v)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("SpecOf = %+v, want %+v", got, want)
	}
	rv := reflect.ValueOf(got)
	for i := 0; i < rv.NumField(); i++ {
		if rv.Field(i).IsZero() {
			t.Errorf("GuestSpec.%s is not filled from the record", rv.Type().Field(i).Name)
		}
	}
}
