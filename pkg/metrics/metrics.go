// Package metrics holds vmd's own Prometheus metrics beyond the HTTP ones:
// VM provisioning and boots, reconciler passes, store query latency and the
// work queue's depth. Everything registers on the one registry vmd passes
// around; nothing here touches the global default registry.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// VM records what the reconciler does. It satisfies vm.Observer, so pkg/vm
// needs no Prometheus import.
type VM struct {
	provision *prometheus.HistogramVec
	boots     prometheus.Counter
	failures  prometheus.Counter
	reconcile prometheus.Histogram
}

// NewVM registers the VM metrics on reg.
func NewVM(reg prometheus.Registerer) (*VM, error) {
	m := &VM{
		provision: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vm_provision_duration_seconds",
			Help: "Time to make a VM's files (overlay disk, seed) on create, by result.",
			// Overlays are quick; copying a large template or a slow disk is not.
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}}, []string{"result"}),
		boots: prometheus.NewCounter(prometheus.CounterOpts{Name: "vm_boot_success_total",
			Help: "Guest launches that reached running."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "vm_boot_failure_total",
			Help: "Guest launches that failed or ended in error before running."}),
		reconcile: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "controller_reconcile_duration_seconds",
			Help:    "Time of one reconciler pass over one VM (a launch or a graceful stop included).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}}),
	}
	if err := register(reg, m.provision, m.boots, m.failures, m.reconcile); err != nil {
		return nil, err
	}
	// Both results exist from the start so rate() and ratios see zeros, not gaps.
	m.provision.WithLabelValues("ok")
	m.provision.WithLabelValues("error")
	return m, nil
}

// ObserveProvision records one provisioning and whether it failed.
func (m *VM) ObserveProvision(d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.provision.WithLabelValues(result).Observe(d.Seconds())
}

// ObserveBoot records how one launch of a guest ended.
func (m *VM) ObserveBoot(ok bool) {
	if ok {
		m.boots.Inc()
	} else {
		m.failures.Inc()
	}
}

// ObserveReconcile records one reconciler pass.
func (m *VM) ObserveReconcile(d time.Duration) { m.reconcile.Observe(d.Seconds()) }

// RegisterQueueDepth registers the queue_depth gauge, read from depth at
// each scrape (the Redis queue's Depth, say). A depth that cannot be read
// should return -1 rather than block the scrape.
func RegisterQueueDepth(reg prometheus.Registerer, depth func() int64) error {
	return reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "queue_depth",
		Help: "Jobs waiting in the work queue (-1 when it cannot be read)."},
		func() float64 { return float64(depth()) }))
}

func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
