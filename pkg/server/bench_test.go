package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmdhq/vmd/pkg/account"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/cluster"
	"github.com/vmdhq/vmd/pkg/image"
	"github.com/vmdhq/vmd/pkg/mail"
	"github.com/vmdhq/vmd/pkg/metrics"
	"github.com/vmdhq/vmd/pkg/ratelimit"
	"github.com/vmdhq/vmd/pkg/server"
	"github.com/vmdhq/vmd/pkg/store/storetest"
	"github.com/vmdhq/vmd/pkg/vm"
)

// benchVMs is how many VMs the benchmark's user owns, as in bench/apibench.
const benchVMs = 10

// readBench is the read API assembled as vmd serve assembles it (store
// calls timed, node health from the cluster registry, a JSON access log
// line and request metrics for every request), called in-process so the
// figures are the server's alone.
type readBench struct {
	h     http.Handler
	token string
	names []string
}

func setupReadBench(b *testing.B, be storetest.Backend) *readBench {
	b.Helper()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	dbm, err := metrics.NewDB(reg)
	if err != nil {
		b.Fatal(err)
	}
	st := dbm.Wrap(be.Open(b))
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	secret := bytes.Repeat([]byte("k"), 32)
	clu, err := cluster.New(cluster.Config{Store: st, Name: "test", AdvertiseURL: "http://vmd.test",
		Capacity: cluster.Capacity{CPUs: 64, MemoryMB: 1 << 16, DiskGB: 1 << 10}, Secret: secret, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	if err := clu.Register(ctx); err != nil {
		b.Fatal(err)
	}
	accounts, err := account.New(account.Config{Store: st, Hasher: account.NewHasher(2), Limiter: ratelimit.NewMemory(),
		Mailer: mail.LogSender{Log: log}, Secret: secret, PublicURL: "http://vmd.test",
		DefaultQuota: api.Quota{VMs: benchVMs, CPUs: benchVMs, MemoryMB: benchVMs * 128, DiskGB: benchVMs * 10}, Log: log})
	if err != nil {
		b.Fatal(err)
	}
	imgDir := filepath.Join(b.TempDir(), "images")
	makeTemplate(b, imgDir, "tiny")
	vms := vm.NewService(vm.ServiceConfig{Store: st, Templates: image.NewCatalog(imgDir), Node: "test", Health: clu, Placement: clu})
	s, err := server.New(server.Config{Accounts: accounts, VMs: vms, Store: st, PublicURL: "http://vmd.test", Log: log,
		Registry: reg, Cluster: clu, Version: "test"})
	if err != nil {
		b.Fatal(err)
	}
	accounts.OnSessionEnd(s.EndSessions)
	if _, err := accounts.AddUser(ctx, "bench@example.com", "correct horse battery", false); err != nil {
		b.Fatal(err)
	}
	lr, err := accounts.Login(ctx, "bench@example.com", "correct horse battery", "127.0.0.1", account.KindCLI)
	if err != nil {
		b.Fatal(err)
	}
	rb := &readBench{h: s, token: lr.Token}
	for i := range benchVMs {
		name := fmt.Sprintf("api-%02d", i)
		if _, err := vms.Create(ctx, lr.User.ID, api.CreateVMRequest{Name: name, Template: "tiny", CPU: 1, MemoryMB: 128}); err != nil {
			b.Fatal(err)
		}
		rb.names = append(rb.names, name)
	}
	return rb
}

// BenchmarkGetVM is GET /api/v1/vms/{name} (authentication, the lookup,
// its events, node health, the access log line), cycling through the VMs.
func BenchmarkGetVM(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			rb := setupReadBench(b, be)
			rb.run(b, func(i int) string { return api.BasePath + "/vms/" + rb.names[i%len(rb.names)] })
		})
	}
}

// BenchmarkListVMs is GET /api/v1/vms: the user's benchVMs VMs.
func BenchmarkListVMs(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			rb := setupReadBench(b, be)
			rb.run(b, func(int) string { return api.BasePath + "/vms" })
		})
	}
}

// run serves b.N requests from parallel goroutines (GOMAXPROCS of them,
// as the HTTP server's connections would be) and fails on any answer
// but 200.
func (rb *readBench) run(b *testing.B, path func(i int) string) {
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			req := httptest.NewRequest(http.MethodGet, path(i), nil)
			req.Header.Set("Authorization", "Bearer "+rb.token)
			w := httptest.NewRecorder()
			rb.h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Errorf("GET %s = %d: %s", req.URL.Path, w.Code, w.Body)
				return
			}
			i++
		}
	})
	b.StopTimer()
	// CPU time a request is steadier than wall time on a shared machine
	// (it excludes PostgreSQL's own processes).
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// cpuTime is the user and system CPU time this process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
