package daemon

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// settingsFor parses args as `vmd serve` would and returns the resulting Config.
func settingsFor(t *testing.T, args []string) (Config, error) {
	t.Helper()
	st := newSettings()
	cmd := &cobra.Command{Use: "serve", RunE: func(*cobra.Command, []string) error { return nil }}
	addCommonFlags(cmd.Flags())
	if err := cmd.ParseFlags(args); err != nil {
		return Config{}, err
	}
	if err := st.bind(cmd); err != nil {
		return Config{}, err
	}
	return st.config()
}

func TestSettingsPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "vmd.yaml")
	if err := os.WriteFile(cfgFile, []byte("listen: 127.0.0.1:7000\nnode-name: from-file\nquota-vms: 9\naccel: tcg\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VMD_NODE_NAME", "from-env")
	t.Setenv("VMD_DATA_DIR", dir)
	c, err := settingsFor(t, []string{"--config", cfgFile, "--quota-vms", "11"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:7000" || c.NodeName != "from-env" || c.DefaultQuota.VMs != 11 || c.Accel != "tcg" || c.DataDir != dir {
		t.Fatalf("config = %+v", c)
	}
	if c.PublicURL != "http://127.0.0.1:7000" || c.MailFrom != "vmd@localhost" {
		t.Fatalf("derived defaults: %s %s", c.PublicURL, c.MailFrom)
	}
}

func TestSettingsRejectBadValues(t *testing.T) {
	t.Setenv("VMD_DATA_DIR", t.TempDir())
	for _, args := range [][]string{
		{"--accel", "fast"},
		{"--public-url", "vmd.example.com"},
		{"--public-url", "ftp://x"},
		{"--database-url", "mysql://x"},
		{"--restart-policy", "sometimes"},
		{"--qemu-uid-range", "100"},
		{"--qemu-uid-range", "0-65535"},
		{"--min-ttl", "0s"},
		{"--default-ttl", "3h", "--max-ttl", "2h"},
		{"--max-ttl", "-1h"},
	} {
		if _, err := settingsFor(t, args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestMainExitCodes(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := Main([]string{"serve", "--accel", "nope", "--data-dir", dir}, strings.NewReader(""), &out, &errb); code != 2 {
		t.Fatalf("bad flag value: exit %d, %s", code, errb.String())
	}
	if code := Main([]string{"serve", "--no-such-flag"}, strings.NewReader(""), &out, &errb); code != 2 {
		t.Fatalf("unknown flag: exit %d", code)
	}
	errb.Reset()
	if code := Main([]string{"user", "add", "a@example.com", "--data-dir", dir}, strings.NewReader("pw\n"), &out, &errb); code != 2 ||
		!strings.Contains(errb.String(), "--password-stdin") {
		t.Fatalf("user add without --password-stdin: exit %d, %s", code, errb.String())
	}
	out.Reset()
	if code := Main([]string{"user", "add", "a@example.com", "--password-stdin", "--admin", "--data-dir", dir}, strings.NewReader("long password\n"), &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "as admin") {
		t.Fatalf("user add: exit %d, %s %s", code, out.String(), errb.String())
	}
	if code := Main([]string{"user", "add", "a@example.com", "--password-stdin", "--data-dir", dir}, strings.NewReader("long password\n"), &out, &errb); code != 1 {
		t.Fatalf("duplicate user add: exit %d", code)
	}
	if fi, err := os.Stat(filepath.Join(dir, "session.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("session key: %v %v", fi, err)
	}
}

func TestTrustedProxies(t *testing.T) {
	t.Setenv("VMD_DATA_DIR", t.TempDir())
	t.Setenv("VMD_TRUSTED_PROXIES", "127.0.0.1,10.0.0.0/8 ::1")
	c, err := settingsFor(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range c.trustedNets {
		got = append(got, n.String())
	}
	if strings.Join(got, " ") != "127.0.0.1/32 10.0.0.0/8 ::1/128" {
		t.Fatalf("trusted nets = %v", got)
	}
	if _, err := settingsFor(t, []string{"--trusted-proxies", "not-an-ip"}); err == nil {
		t.Fatal("bad CIDR accepted")
	}
}

func TestRelativeDirsBecomeAbsolute(t *testing.T) {
	t.Chdir(t.TempDir())
	c, err := settingsFor(t, []string{"--data-dir", "rel/data", "--run-dir", "rel/run"})
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(c.DataDir) || !filepath.IsAbs(c.RunDir) {
		t.Fatalf("dirs not absolute: %s %s", c.DataDir, c.RunDir)
	}
}

func TestGuestEgressAllow(t *testing.T) {
	t.Setenv("VMD_DATA_DIR", t.TempDir())
	c, err := settingsFor(t, []string{"--guest-egress-allow", "10.231.0.7/24", "--guest-egress-allow", "192.168.50.0/24,172.16.0.0/12"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.egressAllow {
		got = append(got, p.String())
	}
	if strings.Join(got, " ") != "10.231.0.0/24 192.168.50.0/24 172.16.0.0/12" {
		t.Fatalf("egress allow = %v", got)
	}
	for _, bad := range []string{"10.0.0.1", "nope/8", "10.0.0.0/33"} {
		if _, err := settingsFor(t, []string{"--guest-egress-allow", bad}); err == nil {
			t.Errorf("--guest-egress-allow %s accepted", bad)
		}
	}
}
