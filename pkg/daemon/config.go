// Package daemon assembles vmd from its parts (store, accounts, VMs, HTTP
// server) and holds the `vmd` command tree. cmd/vmd only calls Main.
package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/qemu"
)

// Config is every setting of vmd; flags, VMD_* variables and --config fill it.
type Config struct {
	Listen        string
	DataDir       string
	DatabaseURL   string
	RedisURL      string
	Accel         string
	PublicURL     string
	SMTPURL       string
	MailFrom      string
	NodeName      string
	SessionSecret string
	RunDir        string
	QEMUUser      string
	QEMUUIDRange  string
	qemuUIDs      qemu.UIDRange
	StopTimeout   time.Duration
	// EventStreamsPerUser caps each user's open GET /events streams.
	EventStreamsPerUser int
	RestartPolicy       string
	// ChangesRetention is how long the change feed behind GET /events keeps an entry.
	ChangesRetention time.Duration
	LogLevel         string
	// TrustedProxies are CIDRs; parsed into trustedNets by complete.
	TrustedProxies []string
	trustedNets    []*net.IPNet
	LogFormat      string
	DefaultQuota   api.Quota
	BrowserTTL     time.Duration
	CLITTL         time.Duration
	Cluster        ClusterSettings
	// TTL is --min-ttl, --default-ttl and --max-ttl: VM lifetimes.
	TTL vm.TTLPolicy
	// GuestOpsPerUser caps each user's concurrent execs and copies; MaxUpload one upload's bytes.
	GuestOpsPerUser int
	MaxUpload       int64
	// GuestEgressAllow are CIDRs (--guest-egress-allow); parsed into egressAllow by complete.
	GuestEgressAllow []string
	egressAllow      []netip.Prefix
}

// defaultDataDir follows the contract: /var/lib/vmd as root, else $XDG_DATA_HOME/vmd.
func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/vmd"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "vmd")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "share", "vmd")
}

// complete fills derived defaults and checks the settings.
func (c *Config) complete() error {
	if c.DataDir == "" {
		c.DataDir = defaultDataDir()
	}
	if c.RunDir == "" {
		c.RunDir = vm.DefaultRunDir()
	}
	var cidrs []string // VMD_TRUSTED_PROXIES arrives as one string; allow commas there too
	for _, e := range c.TrustedProxies {
		cidrs = append(cidrs, strings.FieldsFunc(e, func(r rune) bool { return r == ',' || r == ' ' })...)
	}
	for _, cidr := range cidrs {
		if !strings.Contains(cidr, "/") {
			cidr += map[bool]string{true: "/128", false: "/32"}[strings.Contains(cidr, ":")]
		}
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			return fmt.Errorf("--trusted-proxies %q: %w", cidr, err)
		}
		c.trustedNets = append(c.trustedNets, n)
	}
	for _, e := range c.GuestEgressAllow {
		for _, cidr := range strings.FieldsFunc(e, func(r rune) bool { return r == ',' || r == ' ' }) {
			p, err := netip.ParsePrefix(cidr)
			if err != nil {
				return fmt.Errorf("--guest-egress-allow %q: want a CIDR such as 10.1.2.0/24: %w", cidr, err)
			}
			c.egressAllow = append(c.egressAllow, p.Masked())
		}
	}
	// QEMU gets these paths on its command line and runs in another directory.
	for _, p := range []*string{&c.DataDir, &c.RunDir} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("path %s: %w", *p, err)
		}
		*p = abs
	}
	if c.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("node name: %w", err)
		}
		c.NodeName = h
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Listen
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--public-url %q: must be an absolute http(s) URL", c.PublicURL)
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.MailFrom == "" {
		c.MailFrom = "vmd@" + u.Hostname()
		if !strings.Contains(u.Hostname(), ".") || net.ParseIP(u.Hostname()) != nil {
			c.MailFrom = "vmd@localhost"
		}
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		return fmt.Errorf("--database-url must start with postgres:// (leave it empty for the embedded store)")
	}
	switch c.Accel {
	case "auto", "kvm", "tcg":
	default:
		return fmt.Errorf("--accel %q: must be auto, kvm or tcg", c.Accel)
	}
	if _, err := vm.ParseRestartPolicy(c.RestartPolicy); err != nil {
		return fmt.Errorf("--restart-policy: %w", err)
	}
	if c.ChangesRetention < 0 {
		return fmt.Errorf("--changes-retention %s: must not be negative", c.ChangesRetention)
	}
	if c.TTL.Min <= 0 || c.TTL.Default < 0 || c.TTL.Max < 0 {
		return fmt.Errorf("--min-ttl must be above 0, --default-ttl and --max-ttl not negative")
	}
	if c.TTL.Max > 0 && c.TTL.Default > c.TTL.Max {
		return fmt.Errorf("--default-ttl %s is above --max-ttl %s", c.TTL.Default, c.TTL.Max)
	}
	if c.QEMUUIDRange != "" {
		r, err := qemu.ParseUIDRange(c.QEMUUIDRange)
		if err != nil {
			return fmt.Errorf("--qemu-uid-range: %w", err)
		}
		c.qemuUIDs = r
	}
	return nil
}

func (c *Config) sqlitePath() string { return filepath.Join(c.DataDir, "vmd.db") }
