package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vmdhq/vmd/pkg/account"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/console"
	"github.com/vmdhq/vmd/pkg/image"
	"github.com/vmdhq/vmd/pkg/mail"
	"github.com/vmdhq/vmd/pkg/metrics"
	"github.com/vmdhq/vmd/pkg/queue"
	"github.com/vmdhq/vmd/pkg/ratelimit"
	"github.com/vmdhq/vmd/pkg/redisx"
	"github.com/vmdhq/vmd/pkg/serial"
	"github.com/vmdhq/vmd/pkg/server"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/version"
	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/qemu"
)

// app is vmd's parts, wired; admin commands use the same parts as serve.
type app struct {
	cfg      Config
	log      *slog.Logger
	store    store.Store
	accounts *account.Service
	catalog  *image.Catalog
}

// wrap decorates the store before any part gets it (serve's query timing).
func newApp(ctx context.Context, cfg Config, log *slog.Logger, limiter ratelimit.Limiter, wrap ...func(store.Store) store.Store) (*app, error) {
	if limiter == nil {
		limiter = ratelimit.NewMemory()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	st, err := store.Open(ctx, cfg.DatabaseURL, cfg.sqlitePath())
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	for _, w := range wrap {
		st = w(st)
	}
	secret, err := sessionSecret(cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	var mailer mail.Sender = mail.LogSender{Log: log}
	if cfg.SMTPURL != "" {
		if mailer, err = mail.NewSMTPSender(cfg.SMTPURL, cfg.MailFrom); err != nil {
			st.Close()
			return nil, err
		}
	}
	accounts, err := account.New(account.Config{Store: st, Hasher: account.NewHasher(runtime.NumCPU()),
		Limiter: limiter, Mailer: mailer, Secret: secret, PublicURL: cfg.PublicURL,
		DefaultQuota: cfg.DefaultQuota, BrowserTTL: cfg.BrowserTTL, CLITTL: cfg.CLITTL, Log: log})
	if err != nil {
		st.Close()
		return nil, err
	}
	catalog := image.NewCatalog(filepath.Join(cfg.DataDir, "images"))
	return &app{cfg: cfg, log: log, store: st, accounts: accounts, catalog: catalog}, nil
}

func (a *app) Close() error { return a.store.Close() }

func withApp(ctx context.Context, st *settings, stderr io.Writer, f func(*app) error) error {
	cfg, err := st.config()
	if err != nil {
		return usageError{err}
	}
	a, err := newApp(ctx, cfg, st.logger(stderr), nil)
	if err != nil {
		return err
	}
	defer a.Close()
	return f(a)
}

// sessionSecret is --session-secret, or a key generated once into the data
// dir. Nodes of a cluster must be given the same --session-secret.
func sessionSecret(cfg Config) ([]byte, error) {
	if cfg.SessionSecret != "" {
		if len(cfg.SessionSecret) < 32 {
			return nil, usageError{errors.New("--session-secret must be at least 32 bytes")}
		}
		return []byte(cfg.SessionSecret), nil
	}
	path := filepath.Join(cfg.DataDir, "session.key")
	b, err := os.ReadFile(path)
	if err == nil && len(b) >= 64 {
		return []byte(strings.TrimSpace(string(b))), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	enc := hex.EncodeToString(key)
	if err := os.WriteFile(path, []byte(enc+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return []byte(enc), nil
}

// Serve runs vmd until ctx ends.
func Serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	// One registry for every metric, made first so the store is timed for all its users.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	dbMetrics, err := metrics.NewDB(reg)
	if err != nil {
		return err
	}
	vmMetrics, err := metrics.NewVM(reg)
	if err != nil {
		return err
	}
	shared, err := redisx.OpenWith(ctx, cfg.RedisURL, queue.Options{Log: log})
	if err != nil {
		return err
	}
	defer shared.Close()
	a, err := newApp(ctx, cfg, log, shared.Limiter, dbMetrics.Wrap)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := metrics.RegisterQueueDepth(reg, func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := shared.Queue.Depth(ctx, cfg.NodeName)
		if err != nil {
			return -1
		}
		return n
	}); err != nil {
		return err
	}
	accel, reason, err := qemu.ProbeAccel(ctx, cfg.Accel)
	if err != nil {
		return err
	}
	log.Info("accelerator chosen", "accel", accel, "requested", cfg.Accel, "reason", reason)
	policy, err := vm.ParseRestartPolicy(cfg.RestartPolicy)
	if err != nil {
		return fmt.Errorf("--restart-policy: %w", err)
	}
	// QEMU runs unprivileged and must pass through these to reach its files and sockets.
	if err := os.MkdirAll(cfg.RunDir, 0o711); err != nil {
		return fmt.Errorf("run dir: %w", err)
	}
	for _, dir := range []string{cfg.RunDir, cfg.DataDir} {
		if err := os.Chmod(dir, 0o711); err != nil {
			return fmt.Errorf("open %s to the qemu user: %w", dir, err)
		}
	}
	layout := vm.Layout{DataDir: cfg.DataDir, RunDir: cfg.RunDir}
	drv, err := qemu.New(qemu.Config{Layout: layout, Accel: accel,
		User: cfg.QEMUUser, UIDs: cfg.qemuUIDs, StopTimeout: cfg.StopTimeout, Logger: log,
		EgressAllow: cfg.egressAllow})
	if err != nil {
		return err
	}
	defer drv.Close()   // guests keep running; the next vmd re-adopts them
	var vms *vm.Service // made below; an open console is activity on its VM
	cons, err := console.New(console.Config{PublicURL: cfg.PublicURL, Store: a.store,
		Sockets: console.LayoutSockets{Layout: layout}, Tokens: shared.Tokens, Registry: reg, Log: log,
		Active: func(ctx context.Context, id string) { vms.Touch(ctx, id) }, Guests: drv})
	if err != nil {
		return err
	}
	defer cons.Close() // Shutdown does not end hijacked WebSocket connections
	rec := vm.NewReconciler(vm.ReconcilerConfig{Store: a.store, Driver: drv, Node: cfg.NodeName, Layout: layout,
		RestartPolicy: policy, Logger: log, Observer: vmMetrics, Locker: shared.Locker, ReadyLine: a.catalog.ReadyLine, StateChanged: func(id string, s api.State) {
			if !console.HasConsole(s) { // a paused VM's console shows the frozen screen
				cons.CloseVM(id)
			}
		}})
	clu, stopClu, err := startCluster(ctx, a, log)
	if err != nil {
		return err
	}
	defer stopClu()
	kicker := &vm.QueueKicker{Store: a.store, Queue: shared.Queue, Local: rec, Node: cfg.NodeName, Log: log}
	vms = vm.NewService(vm.ServiceConfig{Store: a.store, Templates: a.catalog, Provisioner: rec, Kicker: kicker, Node: cfg.NodeName,
		Health: clu, Placement: clu, TTL: cfg.TTL, Screens: drv})
	vms.SetGuest(vm.GuestConfig{Agents: drv, OpsPerUser: cfg.GuestOpsPerUser, MaxUpload: cfg.MaxUpload})
	vms.SetAddresser(drv)
	keeper := vm.NewHousekeeper(vm.HousekeeperConfig{Store: a.store, KeepChanges: cfg.ChangesRetention, Logger: log})
	rctx, stopRec := context.WithCancel(ctx)
	var workers sync.WaitGroup
	workers.Add(3)
	go func() { defer workers.Done(); _ = rec.Run(rctx) }()
	go func() { defer workers.Done(); keeper.Run(rctx) }()
	go func() {
		defer workers.Done()
		host, _ := os.Hostname()
		if err := kicker.ConsumeJobs(rctx, fmt.Sprintf("%s-%d", host, os.Getpid())); err != nil {
			log.Error("work queue consumer stopped", "err", err)
		}
	}()
	defer func() { stopRec(); workers.Wait() }()

	srv, err := server.New(server.Config{Accounts: a.accounts, VMs: vms, Store: a.store, PublicURL: cfg.PublicURL, Console: cons,
		Cluster: clu, TrustedProxies: cfg.trustedNets, EventStreamsPerUser: cfg.EventStreamsPerUser, Log: log, Registry: reg, Version: version.Version,
		Checks: readyChecks(shared),
		Logs:   &serial.Logs{Layout: layout},
		Ready: func(context.Context) map[string]string {
			return map[string]string{"node": cfg.NodeName, "accel": accel, "accel_reason": reason}
		}})
	if err != nil {
		return err
	}
	// However a session ends (logout, password change, an admin disabling
	// its user), what it opened on this node closes with it.
	a.accounts.OnSessionEnd(srv.EndSessions)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	ln = server.Listener(ln, log) // net/http's own refusals in the API's JSON shape too
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	log.Info("vmd serving", "listen", ln.Addr().String(), "public_url", cfg.PublicURL, "data_dir", cfg.DataDir,
		"store", map[bool]string{true: "postgres", false: "sqlite"}[cfg.DatabaseURL != ""], "node", cfg.NodeName,
		"version", version.Version)
	hs.RegisterOnShutdown(srv.CloseStreams)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("vmd shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}

// readyChecks are the backing services /readyz reports besides the store.
func readyChecks(shared *redisx.Backends) map[string]func(context.Context) error {
	if shared.Redis == nil {
		return nil
	}
	return map[string]func(context.Context) error{"redis": shared.Ping}
}
