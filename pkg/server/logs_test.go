package server_test

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/serial"
	"github.com/vmdhq/vmd/pkg/server"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm"
)

// follower is an open GET /logs?follow=true.
type follower struct {
	res   *http.Response
	lines chan string
}

func (u *user) follow(t *testing.T, ref string) *follower {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), "GET", u.e.srv.URL+api.BasePath+"/vms/"+ref+"/logs?follow=true&tail=1", nil)
	req.Header.Set("Authorization", "Bearer "+u.token)
	res, err := u.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	f := &follower{res: res, lines: make(chan string, 100)}
	go func() {
		defer close(f.lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			f.lines <- sc.Text()
		}
	}()
	return f
}

func (f *follower) want(t *testing.T, line string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case l, ok := <-f.lines:
			if !ok {
				t.Fatalf("stream ended before %q", line)
			}
			if l == line {
				return
			}
		case <-timeout:
			t.Fatalf("no %q in 5 s", line)
		}
	}
}

func (f *follower) endsWithin(t *testing.T, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case _, ok := <-f.lines:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatalf("follow still open after %s", d)
		}
	}
}

func appendLog(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestLogs(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		layout := vm.Layout{DataDir: t.TempDir(), RunDir: t.TempDir()}
		logs := &serial.Logs{Layout: layout, MaxFollowsPerUser: 2, Poll: 10 * time.Millisecond}
		e := newEnvWith(t, b, func(c *server.Config) { c.Logs = logs })
		alice, bob := e.signup("alice@example.com"), e.signup("bob@example.com")
		var v api.VM
		alice.mustDo("POST", "/vms", api.CreateVMRequest{Name: "web", Template: "tiny"}, 201, &v)
		path := layout.VMFile(v.OwnerID, v.ID, vm.SerialFile)

		st, data := alice.do("GET", "/vms/web/logs", nil, nil)
		if st != 200 || len(data) != 0 {
			t.Fatalf("logs before any output: %d %q", st, data)
		}
		appendLog(t, path, "line 1\r\nline 2\r\nline 3\r\n")
		st, data = alice.do("GET", "/vms/web/logs?tail=2", nil, nil)
		if st != 200 || string(data) != "line 2\r\nline 3\r\n" {
			t.Fatalf("tail=2: %d %q", st, data)
		}
		st, data = alice.do("GET", "/vms/"+v.ID+"/logs", nil, nil)
		if st != 200 || !strings.HasPrefix(string(data), "line 1") {
			t.Fatalf("all: %d %q", st, data)
		}
		for _, q := range []string{"tail=-1", "tail=10001", "tail=x", "follow=maybe"} {
			st, data = alice.do("GET", "/vms/web/logs?"+q, nil, nil)
			wantError(t, st, data, 400, api.CodeBadRequest)
		}
		// Another user's VM does not exist for bob, by id or by name.
		st, data = bob.do("GET", "/vms/"+v.ID+"/logs", nil, nil)
		wantError(t, st, data, 404, api.CodeNotFound)
		st, data = bob.do("GET", "/vms/"+v.ID+"/logs?follow=true", nil, nil)
		wantError(t, st, data, 404, api.CodeNotFound)

		f := alice.follow(t, "web")
		if f.res.StatusCode != 200 || !strings.HasPrefix(f.res.Header.Get("Content-Type"), "text/plain") {
			t.Fatalf("follow: %d %s", f.res.StatusCode, f.res.Header.Get("Content-Type"))
		}
		f.want(t, "line 3")
		appendLog(t, path, "marker-42\r\n")
		f.want(t, "marker-42")

		// The cap: two follows at once, the third refused.
		g := alice.follow(t, "web")
		g.want(t, "marker-42")
		st, data = alice.do("GET", "/vms/web/logs?follow=true", nil, nil)
		wantError(t, st, data, 429, api.CodeRateLimited)
		g.res.Body.Close()

		// Deleting the VM ends the follow.
		alice.mustDo("DELETE", "/vms/web", nil, 202, nil)
		f.endsWithin(t, 3*time.Second)

		// Ending the session ends a follow.
		var w api.VM
		alice.mustDo("POST", "/vms", api.CreateVMRequest{Name: "db", Template: "tiny"}, 201, &w)
		h := alice.follow(t, "db")
		if h.res.StatusCode != 200 {
			t.Fatalf("follow db: %d", h.res.StatusCode)
		}
		alice.mustDo("POST", "/auth/logout", nil, 204, nil)
		h.endsWithin(t, 3*time.Second)
	})
}
