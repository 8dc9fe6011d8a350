package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/vmdhq/vmd/pkg/api"
)

func TestParseLifecycleCommands(t *testing.T) {
	var ext *ExtendOptions
	f := newTestEnv(t).f
	if err := parse(t, NewCmdExtend(f, func(_ context.Context, o *ExtendOptions) error { ext = o; return nil }), "web", "30m"); err != nil {
		t.Fatal(err)
	}
	if ext.Name != "web" || ext.TTL != "30m" {
		t.Fatalf("extend options %+v", ext)
	}
	for _, argv := range [][]string{{"web"}, {"web", "soon"}, {"web", "30m", "x"}} {
		if err := parse(t, NewCmdExtend(f, func(context.Context, *ExtendOptions) error { return nil }), argv...); !isFlagError(err) {
			t.Errorf("extend %v: %v, want a flag error", argv, err)
		}
	}
	if w, err := parseWaitFor("state=paused"); err != nil || w.state != api.StatePaused {
		t.Fatalf("wait --for state=paused: %+v %v", w, err)
	}
	var pause *PowerOptions
	if err := parse(t, NewCmdPause(f, func(_ context.Context, o *PowerOptions) error { pause = o; return nil }), "web"); err != nil || pause.Name != "web" {
		t.Fatalf("pause: %v %+v", err, pause)
	}
	if err := parse(t, NewCmdResume(f, func(context.Context, *PowerOptions) error { return nil })); !isFlagError(err) {
		t.Fatalf("resume without a name: %v", err)
	}
}

// TestLifecycleRun: pause, resume and extend call their routes; create
// sends ttl and idle_stop; extend prints the new expiry.
func TestLifecycleRun(t *testing.T) {
	e := newTestEnv(t)
	seedVMs(e.fake)
	bg := context.Background()
	po := &PowerOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: "web"}
	if err := powerRun(bg, po, "pause", pauseCall); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.errOut.String(), "vm web: pause requested (state paused)") {
		t.Fatalf("stderr %q", e.errOut)
	}
	if err := powerRun(bg, po, "resume", resumeCall); err != nil {
		t.Fatal(err)
	}
	if code := ExitCode(powerRun(bg, &PowerOptions{IO: e.f.IOStreams, Client: e.f.Client, Name: "ghost"}, "pause", pauseCall)); code != ExitNotFound {
		t.Errorf("pause ghost exit %d", code)
	}
	if err := extendRun(bg, &ExtendOptions{IO: e.f.IOStreams, Client: e.f.Client, Now: e.f.Now, Name: "web", TTL: "45m"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.errOut.String(), "vm web: expires at 2025-06-01T12:45:00Z") {
		t.Fatalf("stderr %q", e.errOut)
	}
	if code := ExitCode(extendRun(bg, &ExtendOptions{IO: e.f.IOStreams, Client: e.f.Client, Now: e.f.Now, Name: "web", TTL: "5s"})); code == ExitOK {
		t.Error("a ttl below the minimum was accepted")
	}
	if err := createRun(bg, &CreateOptions{IO: e.f.IOStreams, Client: e.f.Client, Now: e.f.Now, Name: "ci", Template: "tiny",
		TTL: "30m", IdleStop: "10m", Output: "json"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.out.String(), `"expires_at": "2025-06-01T12:30:00Z"`) || !strings.Contains(e.out.String(), `"idle_stop": "10m"`) {
		t.Fatalf("create output %s", e.out)
	}
	log := strings.Join(e.fake.requestLog(), "\n")
	for _, want := range []string{"POST /api/v1/vms/web/pause", "POST /api/v1/vms/web/resume", "POST /api/v1/vms/web/extend"} {
		if !strings.Contains(log, want) {
			t.Errorf("no %s in %s", want, log)
		}
	}
	if got := e.fake.vms["web"].State; got != api.StateRunning {
		t.Errorf("state after resume %s", got)
	}
}
