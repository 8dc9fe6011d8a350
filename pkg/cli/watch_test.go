package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
)

// waitOutput waits until out holds want.
func waitOutput(t *testing.T, out *testutil.SyncBuffer, want string) {
	t.Helper()
	if !testutil.WaitFor(5*time.Second, func() bool { return strings.Contains(out.String(), want) }) {
		t.Fatalf("output lacks %q:\n%s", want, out.String())
	}
}

func TestListWatch(t *testing.T) {
	tests := []struct {
		name   string
		tty    bool
		output string
		before []string // in the output before the new VM
		after  []string // lines the new VM adds, in order
	}{
		{"piped table", false, "table", []string{"web\trunning\ttiny\t1\t256MB\t1GB\t2025-06-01T12:00:00Z\n"},
			[]string{"api\tprovisioning\ttiny\t1\t256MB\t1GB\t2025-06-01T12:00:00Z\n", "api\trunning\ttiny\t1\t256MB\t1GB\t2025-06-01T12:00:00Z\n"}},
		{"tty table keeps its columns", true, "table", []string{"NAME       STATE     TEMPLATE   CPU   MEMORY   DISK   AGE\nweb        running   tiny       1     256MB    1GB    90m\n"},
			[]string{"api        provisioning   tiny       1     256MB    1GB    90m\n", "api        running        tiny       1     256MB    1GB    90m\n"}},
		{"name", false, "name", []string{"web\ndatabase\n"}, []string{"database\napi\n", "api\napi\n"}},
		{"json lines", false, "json", []string{`"name":"web"`}, []string{`{"id":1,"vm_id":"vm_API","vm_name":"api","state":"provisioning"`, `"vm_name":"api","state":"running"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			seedVMs(e.fake)
			e.fake.pollsToRunning = 5
			if tt.tty {
				e.tty()
			}
			out := &testutil.SyncBuffer{}
			e.f.IOStreams.Out = out
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() {
				errc <- listRun(ctx, &ListOptions{IO: e.f.IOStreams, Client: e.f.Client, Now: e.f.Now, Watch: true, Output: tt.output})
			}()
			for _, w := range tt.before {
				waitOutput(t, out, w)
			}
			c := client.New(e.fake.URL(), "tok")
			if _, err := c.CreateVM(ctx, api.CreateVMRequest{Name: "api", Template: "tiny"}); err != nil {
				t.Fatal(err)
			}
			waitOutput(t, out, tt.after[0])
			waitOutput(t, out, tt.after[1])
			if i, j := strings.Index(out.String(), tt.after[0]), strings.LastIndex(out.String(), tt.after[1]); i > j {
				t.Errorf("changes out of order:\n%s", out.String())
			}
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Fatalf("watch ended with %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("watch did not end with its context")
			}
		})
	}
}

func TestGetWatchEndsWithDelete(t *testing.T) {
	e := newTestEnv(t)
	seedVMs(e.fake)
	e.fake.pollsToGone = 3
	out := &testutil.SyncBuffer{}
	e.f.IOStreams.Out = out
	errc := make(chan error, 1)
	go func() {
		errc <- getRun(bg, &GetOptions{IO: e.f.IOStreams, Client: e.f.Client, Now: e.f.Now, Name: "web", Watch: true, Output: "name"})
	}()
	waitOutput(t, out, "web\n")
	if _, err := client.New(e.fake.URL(), "tok").DeleteVM(bg, "web"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("get --watch did not end when the vm was deleted")
	}
	// the first state, deleting, deleted
	if out.String() != "web\nweb\nweb\n" {
		t.Errorf("output %q", out.String())
	}
}

func TestDeleteWait(t *testing.T) {
	tests := []struct {
		name     string
		gone     int
		timeout  time.Duration
		wantCode int
	}{
		{"gone", 4, 5 * time.Second, ExitOK},
		{"times out", 1 << 30, 50 * time.Millisecond, ExitTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			seedVMs(e.fake)
			e.fake.pollsToGone = tt.gone
			err := deleteRun(bg, &DeleteOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: "web", Yes: true, Wait: true,
				Timeout: tt.timeout, Interval: 5 * time.Millisecond})
			if got := ExitCode(err); got != tt.wantCode {
				t.Fatalf("exit %d (%v), want %d", got, err, tt.wantCode)
			}
			if tt.wantCode == ExitOK && !strings.Contains(e.errOut.String(), "vm web: deleted") {
				t.Errorf("stderr %q", e.errOut)
			}
		})
	}
}

// TestWaitWithoutFeed runs the waits against a vmd that has no GET /events.
func TestWaitWithoutFeed(t *testing.T) {
	e := newTestEnv(t)
	seedVMs(e.fake)
	e.fake.noEvents = true
	e.fake.vms["web"].State, e.fake.pollsToRunning = api.StateStarting, 3
	err := waitRun(bg, &WaitOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: "web", For: waitCondition{state: api.StateRunning},
		Timeout: 5 * time.Second, Interval: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	gets := 0
	for _, r := range e.fake.requestLog() {
		if r == "GET /api/v1/vms/web" {
			gets++
		}
	}
	if gets != 3 {
		t.Errorf("polled %d times, want 3", gets)
	}
}

// TestWaitFailsWhenErrorArrives: the VM is fine when the wait starts and
// goes to error on the feed; waiting for running ends at once with exit 1.
func TestWaitFailsWhenErrorArrives(t *testing.T) {
	e := newTestEnv(t)
	seedVMs(e.fake)
	e.fake.vms["web"].State, e.fake.pollsToRunning = api.StateStarting, 1<<30
	// The wait has started once it has opened the feed and then read the VM.
	started := func() bool {
		feed := false
		for _, r := range e.fake.requestLog() {
			feed = feed || strings.HasPrefix(r, "GET /api/v1/events")
			if feed && r == "GET /api/v1/vms/web" {
				return true
			}
		}
		return false
	}
	go func() {
		if !testutil.WaitFor(5*time.Second, started) {
			return // the wait below then times out, and the test fails
		}
		e.fake.mu.Lock()
		vm := e.fake.vms["web"]
		vm.State, vm.Message = api.StateError, "qemu exited: 1"
		e.fake.record(vm, vm.State)
		e.fake.mu.Unlock()
	}()
	err := waitRun(bg, &WaitOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: "web", For: waitCondition{state: api.StateRunning},
		Timeout: 10 * time.Second, Interval: time.Second})
	if ExitCode(err) != ExitError || !strings.Contains(err.Error(), "qemu exited: 1") {
		t.Fatalf("err = %v, want the vm's error", err)
	}
}
