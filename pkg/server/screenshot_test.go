package server_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/image"
	"github.com/vmdhq/vmd/pkg/server"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm"
)

// fakeScreens answers every screenshot with a PNG naming the VM.
type fakeScreens struct {
	mu  sync.Mutex
	ids []string
}

func (f *fakeScreens) Screenshot(_ context.Context, id string) ([]byte, error) {
	f.mu.Lock()
	f.ids = append(f.ids, id)
	f.mu.Unlock()
	return []byte("\x89PNG\r\n\x1a\n" + id), nil
}

func TestScreenshot(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		screens := &fakeScreens{}
		e := newEnvWith(t, b, func(c *server.Config) {
			dir := filepath.Join(t.TempDir(), "images")
			makeTemplate(t, dir, "tiny")
			c.VMs = vm.NewService(vm.ServiceConfig{Store: c.Store, Templates: image.NewCatalog(dir), Node: "test", Screens: screens})
			c.ScreenshotsPerMinute = 3
		})
		alice, bob := e.signup("alice@example.com"), e.signup("bob@example.com")
		var v api.VM
		alice.mustDo("POST", "/vms", api.CreateVMRequest{Name: "web", Template: "tiny"}, 201, &v)

		st, data := alice.do("GET", "/vms/web/screenshot", nil, nil)
		wantError(t, st, data, 409, api.CodeConflict)

		if _, err := e.store.SetState(context.Background(), v.ID, api.StateRunning, "test"); err != nil {
			t.Fatal(err)
		}
		st, data = bob.do("GET", "/vms/"+v.ID+"/screenshot", nil, nil)
		wantError(t, st, data, 404, api.CodeNotFound)

		st, data = alice.do("GET", "/vms/web/screenshot", nil, nil)
		if st != 200 || !bytes.Equal(data, []byte("\x89PNG\r\n\x1a\n"+v.ID)) {
			t.Fatalf("screenshot = %d %q", st, data)
		}
		// Three per minute, and the 409 above counted: each was asked for.
		st, data = alice.do("GET", "/vms/web/screenshot", nil, nil)
		if st != 200 {
			t.Fatalf("second screenshot = %d %s", st, data)
		}
		st, data = alice.do("GET", "/vms/web/screenshot", nil, nil)
		wantError(t, st, data, 429, api.CodeRateLimited)
		// Bob's own budget is untouched by Alice's.
		st, data = bob.do("GET", "/vms/"+v.ID+"/screenshot", nil, nil)
		wantError(t, st, data, 404, api.CodeNotFound)
		if fmt.Sprint(screens.ids) != fmt.Sprint([]string{v.ID, v.ID}) {
			t.Fatalf("driver asked for %v", screens.ids)
		}
	})
}
