package cli

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vmdhq/vmd/pkg/api"
)

func TestParseMapping(t *testing.T) {
	tests := []struct {
		in   string
		want PortMapping
		bad  bool
	}{
		{"8080:80", PortMapping{"127.0.0.1", 8080, 80}, false},
		{"22", PortMapping{"127.0.0.1", 22, 22}, false},
		{"0:9000", PortMapping{"127.0.0.1", 0, 9000}, false},
		{"0.0.0.0:8443:443", PortMapping{"0.0.0.0", 8443, 443}, false},
		{"[::1]:8080:80", PortMapping{"::1", 8080, 80}, false},
		{"8080:0", PortMapping{}, true},
		{"8080:70000", PortMapping{}, true},
		{"0", PortMapping{}, true},
		{"a:b", PortMapping{}, true},
		{":1:2", PortMapping{}, true},
		{"1:2:3:4", PortMapping{}, true},
		{"[::1:8080:80", PortMapping{}, true},
	}
	for _, tt := range tests {
		got, err := parseMapping(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("%q: no error, got %+v", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: %+v %v, want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParsePortForwardAndSSH(t *testing.T) {
	var pf *PortForwardOptions
	err := parse(t, NewCmdPortForward(newTestEnv(t).f, func(_ context.Context, o *PortForwardOptions) error { pf = o; return nil }),
		"web", "8080:80", "9000")
	if err != nil || pf.Name != "web" || !reflect.DeepEqual(pf.Mappings, []PortMapping{{"127.0.0.1", 8080, 80}, {"127.0.0.1", 9000, 9000}}) {
		t.Fatalf("port-forward: %+v %v", pf, err)
	}
	for _, argv := range [][]string{{"web"}, {"web", "--stdio", "22", "80:80"}, {"web", "80:x"}, {"--stdio", "22"}, {"web", "--stdio", "70000"}} {
		if err := parse(t, NewCmdPortForward(newTestEnv(t).f, func(context.Context, *PortForwardOptions) error { return nil }), argv...); !isFlagError(err) {
			t.Errorf("port-forward %v: %v, want a flag error", argv, err)
		}
	}
	var so *SSHOptions
	run := func(_ context.Context, o *SSHOptions) error { so = o; return nil }
	if err := parse(t, NewCmdSSH(newTestEnv(t).f, run), "web", "-l", "debian", "-i", "k", "--", "sh", "-c", "exit 7"); err != nil {
		t.Fatal(err)
	}
	if so.Name != "web" || so.User != "debian" || so.KeyFile != "k" || so.Port != 22 || strings.Join(so.Command, "|") != "sh|-c|exit 7" {
		t.Fatalf("ssh options %+v", so)
	}
	for _, argv := range [][]string{{}, {"a", "b"}, {"web", "-p", "0"}} {
		if err := parse(t, NewCmdSSH(newTestEnv(t).f, run), argv...); !isFlagError(err) {
			t.Errorf("ssh %v: %v, want a flag error", argv, err)
		}
	}
}

// TestSSHArgs: the ProxyCommand re-runs this vmctl (quoted for sh, % doubled
// for ssh) and the known_hosts file and alias are the VM's own.
func TestSSHArgs(t *testing.T) {
	got := sshArgs("/opt/my vmctl%1/vmctl", "vm_1", "/c/known_hosts.d/vm_1", false,
		&SSHOptions{User: "root", KeyFile: "/k", Port: 22, Command: []string{"echo", "ok"}})
	want := []string{"ssh",
		"-o", "ProxyCommand='/opt/my vmctl%%1/vmctl' port-forward 'vm_1' --stdio 22",
		"-o", "UserKnownHostsFile=/c/known_hosts.d/vm_1",
		"-o", "StrictHostKeyChecking=accept-new",
		"-o", "HostKeyAlias=vm_1",
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-l", "root", "-i", "/k", "-o", "IdentitiesOnly=yes", "vm_1", "--", "echo", "ok"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if code := ExitCode(&ExitStatusError{Code: 7}); code != 7 {
		t.Fatalf("exit code %d", code)
	}
}

func TestPinnedHostKeysAreStrict(t *testing.T) {
	if a := sshArgs("vmctl", "vm_1", t.TempDir()+"/vm_1", true, &SSHOptions{User: "root", Port: 22}); !slices.Contains(a, "StrictHostKeyChecking=yes") {
		t.Fatalf("pinned keys not strict: %q", a)
	}
}

// TestSSHDefaultUser: without -l, vmctl ssh logs in as the VM template's
// ssh_user, and as root when the template names none; -l wins.
func TestSSHDefaultUser(t *testing.T) {
	for _, tt := range []struct {
		template, flag, want string
	}{
		{"debian-12", "", "debian"},
		{"plain", "", "root"},
		{"gone", "", "root"},
		{"debian-12", "admin", "admin"},
	} {
		e := newTestEnv(t)
		e.fake.templateList = []api.Template{{Name: "debian-12", SSHUser: "debian"}, {Name: "plain"}}
		e.fake.addVM(api.VM{ID: "vm_1", Name: "web", Template: tt.template, State: api.StateRunning})
		var argv []string
		opts := &SSHOptions{IO: e.f.IOStreams, Client: e.f.Client, Target: e.f.Target, ConfigPath: e.f.ConfigPath,
			Name: "web", User: tt.flag, Port: 22,
			Exec: func(_ context.Context, a, _ []string, _ *IOStreams) error { argv = a; return nil }}
		if err := sshRun(context.Background(), opts); err != nil {
			t.Fatal(err)
		}
		i := slices.Index(argv, "-l")
		if i < 0 || argv[i+1] != tt.want {
			t.Errorf("template %q, -l %q: ssh %q, want -l %s", tt.template, tt.flag, argv, tt.want)
		}
	}
}
