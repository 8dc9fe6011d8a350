package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/version"
	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/qemu"
)

// Main runs the vmd command line and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd(stdin, stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "vmd:", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

type usageError struct{ error }

// settings binds flags, VMD_* variables and the --config file, in that order of precedence.
type settings struct {
	v *viper.Viper
}

func newSettings() *settings {
	v := viper.New()
	v.SetEnvPrefix("VMD")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	return &settings{v: v}
}

func (s *settings) bind(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if e := s.v.BindPFlag(f.Name, f); e != nil && err == nil {
			err = e
		}
	})
	if err != nil {
		return err
	}
	if path := s.v.GetString("config"); path != "" {
		s.v.SetConfigFile(path)
		s.v.SetConfigType("yaml")
		if err := s.v.ReadInConfig(); err != nil {
			return fmt.Errorf("read --config %s: %w", path, err)
		}
	}
	return nil
}

func (s *settings) config() (Config, error) {
	v := s.v
	c := Config{
		Listen: v.GetString("listen"), DataDir: v.GetString("data-dir"), DatabaseURL: v.GetString("database-url"),
		RedisURL: v.GetString("redis-url"), Accel: v.GetString("accel"), PublicURL: v.GetString("public-url"),
		SMTPURL: v.GetString("smtp-url"), MailFrom: v.GetString("mail-from"), NodeName: v.GetString("node-name"),
		SessionSecret: v.GetString("session-secret"), RunDir: v.GetString("run-dir"), QEMUUser: v.GetString("qemu-user"),
		StopTimeout: v.GetDuration("stop-timeout"), RestartPolicy: v.GetString("restart-policy"),
		ChangesRetention: v.GetDuration("changes-retention"),
		QEMUUIDRange:     v.GetString("qemu-uid-range"),
		LogLevel:         v.GetString("log-level"), LogFormat: v.GetString("log-format"),
		TrustedProxies: v.GetStringSlice("trusted-proxies"),
		BrowserTTL:     v.GetDuration("session-ttl"), CLITTL: v.GetDuration("token-ttl"),
		DefaultQuota: api.Quota{VMs: v.GetInt("quota-vms"), CPUs: v.GetInt("quota-cpus"),
			MemoryMB: v.GetInt("quota-memory-mb"), DiskGB: v.GetInt("quota-disk-gb")},
		EventStreamsPerUser: v.GetInt("max-event-streams"),
		TTL: vm.TTLPolicy{Min: v.GetDuration("min-ttl"), Default: v.GetDuration("default-ttl"),
			Max: v.GetDuration("max-ttl")},
		GuestOpsPerUser:  v.GetInt("max-guest-ops"),
		MaxUpload:        v.GetInt64("max-upload"),
		GuestEgressAllow: v.GetStringSlice("guest-egress-allow"),
	}
	c.Cluster = s.clusterSettings()
	return c, c.complete()
}

func (s *settings) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(s.v.GetString("log-level"))); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if s.v.GetString("log-format") == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// addCommonFlags are the flags every vmd command shares: where the data lives.
func addCommonFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "YAML file with settings (keys are flag names)")
	fs.String("data-dir", "", "directory of the embedded database, images/ and vms/ (default $XDG_DATA_HOME/vmd, /var/lib/vmd as root)")
	fs.String("database-url", "", "postgres://… selects PostgreSQL; empty uses the embedded SQLite file")
	fs.String("redis-url", "", "redis://… for queue, locks and rate limits shared by a cluster; empty keeps them in process")
	fs.String("log-level", "info", "debug, info, warn or error")
	fs.String("log-format", "json", "json or text")
	fs.String("listen", "127.0.0.1:8080", "HTTP address (API, web pages, console WebSocket, metrics)")
	fs.String("public-url", "", "base of links in e-mails and console URLs (default http://<listen>)")
	fs.StringSlice("trusted-proxies", nil, "CIDRs of reverse proxies whose X-Forwarded-For names the client (e.g. 127.0.0.1/32 behind a local nginx)")
	fs.String("node-name", "", "this node's name when several vmd share one database (default: host name)")
	fs.String("accel", "auto", "kvm, tcg, or auto (KVM only where a probe guest really runs, else TCG)")
	fs.String("smtp-url", "", "smtp://user:pass@host:port or smtps://…; empty writes e-mails to the log")
	fs.String("mail-from", "", "sender address of e-mails (default vmd@<public host>)")
	fs.String("session-secret", "", "secret that signs sessions (at least 32 bytes); default: generated once into <data-dir>/session.key")
	fs.String("run-dir", "", "directory of the guests' sockets (default /run/vmd as root, else $XDG_RUNTIME_DIR/vmd)")
	fs.String("qemu-user", "", "one unprivileged user every guest's QEMU runs as when vmd runs as root (default: a uid per guest from --qemu-uid-range)")
	fs.String("qemu-uid-range", qemu.DefaultUIDs.String(), "uids (and gids) given one per guest when vmd runs as root and --qemu-user is empty; must hold no account or subuid block")
	fs.Duration("stop-timeout", 30*time.Second, "how long a stop waits for the guest's ACPI shutdown before quitting it")
	fs.String("restart-policy", "always", "what happens to a guest that dies unasked: always (restarted, at most 5 times in 10 min) or never (left in error)")
	fs.Duration("changes-retention", 7*24*time.Hour, "how long the change feed (GET /events) keeps an entry; a watcher can resume within it")
	fs.Duration("session-ttl", 12*time.Hour, "lifetime of a browser session")
	fs.Duration("token-ttl", 30*24*time.Hour, "lifetime of a CLI bearer token")
	fs.Int("quota-vms", 5, "default quota: number of VMs per user")
	fs.Int("quota-cpus", 8, "default quota: vCPUs per user")
	fs.Int("quota-memory-mb", 8192, "default quota: memory in MB per user")
	fs.Int("quota-disk-gb", 100, "default quota: disk in GB per user")
	fs.Int("max-event-streams", vm.DefaultStreamsPerUser, "open GET /events streams allowed per user (more get 429)")
	fs.Duration("default-ttl", 0, "lifetime of a VM created without --ttl, unless the user has their own (0: never expires; with --max-ttl set, the maximum)")
	fs.Duration("max-ttl", 0, "longest VM lifetime (ttl) a user may ask for, unless the user has their own (0: no maximum)")
	fs.Duration("min-ttl", vm.DefaultMinTTL, "shortest ttl and idle stop accepted; lower it only for tests and CI")
	fs.Int("max-guest-ops", vm.DefaultGuestOps, "concurrent vmctl exec and cp per user (more get 429)")
	fs.Int64("max-upload", vm.DefaultMaxUpload, "bytes one vmctl cp into a guest may carry (more get 413)")
	fs.StringSlice("guest-egress-allow", nil, "private CIDR guests may reach besides the internet (repeatable); loopback, link-local and the host's own addresses stay closed")
}

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	st := newSettings()
	root := &cobra.Command{
		Use:           "vmd",
		Short:         "vmd runs virtual machines and serves their consoles to browsers and vmctl",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Version,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return st.bind(cmd)
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	addCommonFlags(root.PersistentFlags())

	root.AddCommand(&cobra.Command{
		Use:   "serve",
		Short: "Start the server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := st.config()
			if err != nil {
				return usageError{err}
			}
			return Serve(cmd.Context(), cfg, st.logger(stderr))
		},
	})
	root.AddCommand(newUserCmd(st, stdin, stdout, stderr), newImageCmd(st, stdout, stderr))
	addNodeCmd(root, st, stdout, stderr)
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(stdout, "vmd", version.Version) },
	})
	return root
}

func readPassword(stdin io.Reader) (string, error) {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", usageError{errors.New("--password-stdin: no password on standard input")}
	}
	return pw, nil
}

func newUserCmd(st *settings, stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage accounts (works on the data store directly)"}
	var isAdmin, pwStdin bool
	add := &cobra.Command{
		Use:   "add EMAIL --password-stdin [--admin]",
		Short: "Create a verified user",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if !pwStdin {
				return usageError{errors.New("--password-stdin is required (passwords are never taken as arguments)")}
			}
			pw, err := readPassword(stdin)
			if err != nil {
				return err
			}
			return withApp(c.Context(), st, stderr, func(a *app) error {
				u, err := a.accounts.AddUser(c.Context(), args[0], pw, isAdmin)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "created user %s (%s)%s\n", u.Email, u.ID, map[bool]string{true: " as admin"}[isAdmin])
				return nil
			})
		},
	}
	add.Flags().BoolVar(&isAdmin, "admin", false, "make the user an admin")
	add.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from standard input")

	var q api.Quota
	var ttl store.TTLLimits
	setQuota := &cobra.Command{
		Use:   "set-quota EMAIL|ID [--vms N] [--cpus N] [--memory-mb MB] [--disk-gb GB] [--max-ttl D] [--default-ttl D]",
		Short: "Change a user's quota; limits not given stay as they are",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return withApp(c.Context(), st, stderr, func(a *app) error {
				u, err := a.accounts.FindUser(c.Context(), args[0])
				if err != nil {
					return fmt.Errorf("user %s: %w", args[0], err)
				}
				next := u.Quota
				f := c.Flags()
				if f.Changed("vms") {
					next.VMs = q.VMs
				}
				if f.Changed("cpus") {
					next.CPUs = q.CPUs
				}
				if f.Changed("memory-mb") {
					next.MemoryMB = q.MemoryMB
				}
				if f.Changed("disk-gb") {
					next.DiskGB = q.DiskGB
				}
				lim, err := a.store.TTLLimits(c.Context(), u.ID)
				if err != nil {
					return err
				}
				if f.Changed("max-ttl") {
					lim.Max = ttl.Max
				}
				if f.Changed("default-ttl") {
					lim.Default = ttl.Default
				}
				if err := vm.CheckTTLLimits(lim); err != nil {
					return usageError{err}
				}
				u, err = a.accounts.SetQuota(c.Context(), u.ID, next)
				if err != nil {
					return err
				}
				if err := a.store.SetTTLLimits(c.Context(), u.ID, lim); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "quota of %s: vms=%d cpus=%d memory_mb=%d disk_gb=%d max_ttl=%s default_ttl=%s\n", u.Email,
					u.Quota.VMs, u.Quota.CPUs, u.Quota.MemoryMB, u.Quota.DiskGB, ttlText(lim.Max), ttlText(lim.Default))
				return nil
			})
		},
	}
	setQuota.Flags().IntVar(&q.VMs, "vms", 0, "number of VMs")
	setQuota.Flags().IntVar(&q.CPUs, "cpus", 0, "vCPUs")
	setQuota.Flags().IntVar(&q.MemoryMB, "memory-mb", 0, "memory in MB")
	setQuota.Flags().IntVar(&q.DiskGB, "disk-gb", 0, "disk in GB")
	setQuota.Flags().DurationVar(&ttl.Max, "max-ttl", 0, "longest VM lifetime the user may ask for (0: the node's --max-ttl)")
	setQuota.Flags().DurationVar(&ttl.Default, "default-ttl", 0, "lifetime of the user's VMs created without one (0: the node's --default-ttl)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return withApp(c.Context(), st, stderr, func(a *app) error {
				us, err := a.accounts.ListUsers(c.Context())
				if err != nil {
					return err
				}
				fmt.Fprintln(stdout, "ID\tEMAIL\tADMIN\tVERIFIED\tVMS\tCPUS\tMEMORY_MB\tDISK_GB\tDISABLED")
				for _, u := range us {
					fmt.Fprintf(stdout, "%s\t%s\t%t\t%t\t%d/%d\t%d/%d\t%d/%d\t%d/%d\t%t\n", u.ID, u.Email, u.Admin, u.Verified,
						u.Usage.VMs, u.Quota.VMs, u.Usage.CPUs, u.Quota.CPUs, u.Usage.MemoryMB, u.Quota.MemoryMB, u.Usage.DiskGB, u.Quota.DiskGB, u.Disabled)
				}
				return nil
			})
		},
	}
	setDisabled := func(use, short string, disabled bool) *cobra.Command {
		return &cobra.Command{
			Use:   use + " EMAIL|ID",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				return withApp(c.Context(), st, stderr, func(a *app) error {
					u, err := a.accounts.SetDisabled(c.Context(), args[0], disabled)
					if err != nil {
						return err
					}
					fmt.Fprintf(stdout, "%s %sd\n", u.Email, use)
					return nil
				})
			},
		}
	}
	cmd.AddCommand(add, setQuota, list,
		setDisabled("disable", "Disable a user: no more logins, and every session of theirs ends now", true),
		setDisabled("enable", "Let a disabled user log in again", false))
	return cmd
}

// ttlText shows a per-user TTL limit; 0 defers to the node's flag.
func ttlText(d time.Duration) string {
	if d == 0 {
		return "node-default"
	}
	return d.String()
}
