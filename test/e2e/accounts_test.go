package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"gopkg.in/yaml.v3"
)

// TestNewUserFlow is the README's walk-through: sign-up, the e-mail link,
// login, me, create, list, get, delete, with vmctl's exit codes, on both stores.
func TestNewUserFlow(t *testing.T) {
	parallel(t, 1)
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		v := startVMD(t, b, "--quota-vms", "2")
		c := newCLI(t, v.URL)
		const pw = "correct horse battery\n"

		out := c.must(0, pw, "signup", "--server", v.URL, "--email", "ada@example.com", "--password-stdin")
		_ = out
		token := v.SMTP.WaitFor(t, "ada@example.com", 10*time.Second).Token()
		if token == "" {
			t.Fatal("no verification token in the e-mail")
		}
		// Not verified yet: login is refused with the auth exit code.
		c.must(4, pw, "login", "--server", v.URL, "--email", "ada@example.com", "--password-stdin")
		// As the e-mail says: after "--", so no token can be read as a flag.
		c.must(0, "", "verify", "--server", v.URL, "--", token)
		c.must(4, "wrong password\n", "login", "--server", v.URL, "--email", "ada@example.com", "--password-stdin")
		c.must(0, pw, "login", "--server", v.URL, "--email", "ada@example.com", "--password-stdin")

		var me api.User
		if err := json.Unmarshal([]byte(c.must(0, "", "me", "-o", "json")), &me); err != nil {
			t.Fatal(err)
		}
		if me.Email != "ada@example.com" || !me.Verified || me.Quota.VMs != 2 {
			t.Fatalf("me = %+v", me)
		}

		tpl := c.must(0, "", "templates", "-o", "name")
		if strings.TrimSpace(tpl) != "tiny" {
			t.Fatalf("templates = %q", tpl)
		}

		var vm api.VM
		if err := json.Unmarshal([]byte(c.must(0, "", "create", "web", "--template", "tiny", "--memory", "128", "-o", "json")), &vm); err != nil {
			t.Fatal(err)
		}
		if vm.Name != "web" || !strings.HasPrefix(vm.ID, "vm_") || vm.MemoryMB != 128 {
			t.Fatalf("created %+v", vm)
		}
		c.must(5, "", "create", "web", "--template", "tiny")             // name taken
		c.must(1, "", "create", "Bad_Name", "--template", "tiny")        // validation
		c.must(2, "", "create", "x", "--template", "tiny", "--cpu", "x") // usage
		c.must(0, "", "create", "db", "--template", "tiny", "--memory", "128")
		c.must(5, "", "create", "third", "--template", "tiny") // quota of 2 VMs

		names := strings.Fields(c.must(0, "", "list", "-o", "name"))
		if strings.Join(names, ",") != "web,db" {
			t.Fatalf("list names = %v", names)
		}
		var got api.VM
		if err := yaml.Unmarshal([]byte(c.must(0, "", "get", "web", "-o", "yaml")), &got); err != nil {
			t.Fatal(err)
		}
		if got.ID != vm.ID || len(got.Events) == 0 {
			t.Fatalf("get -o yaml = %+v", got)
		}
		c.must(3, "", "get", "nothing")

		// Another user cannot see or touch ada's VMs: not found, by name or id.
		other := newCLI(t, v.URL)
		if out, code := v.admin(t, pw, "user", "add", "bob@example.com", "--password-stdin"); code != 0 {
			t.Fatalf("vmd user add: %d %s", code, out)
		}
		other.must(0, pw, "login", "--server", v.URL, "--email", "bob@example.com", "--password-stdin")
		other.must(3, "", "get", vm.ID)
		other.must(3, "", "delete", vm.ID, "--yes")
		other.must(3, "", "stop", vm.ID)
		if n := strings.TrimSpace(other.must(0, "", "list", "-o", "name")); n != "" {
			t.Fatalf("bob lists %q", n)
		}
		// The admin disables bob: his session ends within a second and he cannot log in; enabled, he can.
		if out, code := v.admin(t, "", "user", "disable", "bob@example.com"); code != 0 {
			t.Fatalf("vmd user disable: %d %s", code, out)
		}
		// Another process ended the session: a node trusts a validated session for at most 1 s.
		testutil.Eventually(t, 5*time.Second, "bob's session refused", func() bool { _, _, code := other.run("", "list"); return code == 4 })
		other.must(4, pw, "login", "--server", v.URL, "--email", "bob@example.com", "--password-stdin")
		if out, code := v.admin(t, "", "user", "enable", "bob@example.com"); code != 0 {
			t.Fatalf("vmd user enable: %d %s", code, out)
		}
		other.must(0, pw, "login", "--server", v.URL, "--email", "bob@example.com", "--password-stdin")
		other.must(0, "", "list")

		c.must(0, "", "delete", "db", "--yes")
		c.must(0, "", "wait", "db", "--for", "delete", "--timeout", "60s")
		// The admin raises the quota; the third VM now fits.
		if out, code := v.admin(t, "", "user", "set-quota", "ada@example.com", "--vms", "3"); code != 0 {
			t.Fatalf("set-quota: %d %s", code, out)
		}
		c.must(0, "", "create", "third", "--template", "tiny", "--memory", "128")
		c.must(0, "", "create", "fourth", "--template", "tiny", "--memory", "128")
		c.must(5, "", "create", "fifth", "--template", "tiny", "--memory", "128")

		c.must(0, "", "logout")
		c.must(4, "", "me")
	})
}
