// Package cluster makes several vmd sharing one database a cluster: each
// registers itself as a node with its capacity and heartbeats; a new VM is
// placed on an alive, non-draining node with room; requests that must run
// on the VM's own node (creation there, console) are proxied to it.
package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
)

// ErrNoCapacity: no alive, non-draining node has room for the VM.
var ErrNoCapacity = vm.ErrNoCapacity

// Capacity is what a node offers to guests.
type Capacity struct {
	CPUs     int
	MemoryMB int
	DiskGB   int
}

// Demand is what a new VM needs.
type Demand = Capacity

// Config sets up a Registry. Zero durations take the defaults noted.
type Config struct {
	Store store.Store
	// Name is this node's name, as recorded on its VMs.
	Name string
	// AdvertiseURL is where the other nodes reach this node's API.
	AdvertiseURL string
	Capacity     Capacity
	// Interval between heartbeats (default 2 s).
	Interval time.Duration
	// Timeout after which a node without a heartbeat counts as down (default 10 s).
	Timeout time.Duration
	// Secret signs placement headers; every node must share it (the session secret).
	Secret []byte
	Logger *slog.Logger
	Now    func() time.Time
}

// Registry is this node's membership: registration, heartbeats, the view
// of the other nodes, placement and forwarding.
type Registry struct {
	cfg Config
	log *slog.Logger
	fw  *forwarder

	mu       sync.Mutex
	nodes    map[string]store.Node
	cachedAt time.Time
}

// New returns a Registry; call Register, then Run.
func New(cfg Config) (*Registry, error) {
	if cfg.Store == nil || cfg.Name == "" || cfg.AdvertiseURL == "" {
		return nil, errors.New("cluster: store, node name and advertise url are required")
	}
	if len(cfg.Secret) == 0 {
		return nil, errors.New("cluster: a secret is required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Registry{cfg: cfg, log: cfg.Logger}
	r.fw = newForwarder(r)
	return r, nil
}

// Name is this node's name.
func (r *Registry) Name() string { return r.cfg.Name }

// Local reports whether node is this one.
func (r *Registry) Local(node string) bool { return node == r.cfg.Name }

// Register records this node (its capacity, URL and a first heartbeat).
func (r *Registry) Register(ctx context.Context) error {
	now := r.cfg.Now().UTC()
	c := r.cfg.Capacity
	err := r.cfg.Store.UpsertNode(ctx, store.Node{Name: r.cfg.Name, AdvertiseURL: r.cfg.AdvertiseURL,
		CPUs: c.CPUs, MemoryMB: c.MemoryMB, DiskGB: c.DiskGB, HeartbeatAt: now, StartedAt: now})
	if err != nil {
		return fmt.Errorf("register node %s: %w", r.cfg.Name, err)
	}
	r.invalidate()
	return nil
}

// Run heartbeats every Interval until ctx ends.
func (r *Registry) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := r.cfg.Store.Heartbeat(ctx, r.cfg.Name, r.cfg.Now().UTC())
		if errors.Is(err, store.ErrNotFound) {
			err = r.Register(ctx) // someone removed our row
		}
		if err != nil && ctx.Err() == nil {
			r.log.Warn("cluster: heartbeat", "node", r.cfg.Name, "err", err)
		}
	}
}

// Alive reports whether n heartbeat within the timeout.
func (r *Registry) Alive(n store.Node) bool {
	return r.cfg.Now().Sub(n.HeartbeatAt) <= r.cfg.Timeout
}

// view returns the nodes, read from the store at most once a second:
// every VM listing asks about its nodes.
func (r *Registry) view(ctx context.Context) (map[string]store.Node, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.nodes != nil && r.cfg.Now().Sub(r.cachedAt) < time.Second {
		return r.nodes, nil
	}
	ns, err := r.cfg.Store.ListNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	m := make(map[string]store.Node, len(ns))
	for _, n := range ns {
		m[n.Name] = n
	}
	r.nodes, r.cachedAt = m, r.cfg.Now()
	return m, nil
}

func (r *Registry) invalidate() {
	r.mu.Lock()
	r.nodes = nil
	r.mu.Unlock()
}

// NodeDown reports whether the VMs of node cannot be vouched for: the node
// stopped heartbeating (since is its last heartbeat) or never registered.
func (r *Registry) NodeDown(ctx context.Context, node string) (down bool, since time.Time, err error) {
	m, err := r.view(ctx)
	if err != nil {
		return false, time.Time{}, err
	}
	n, ok := m[node]
	if !ok {
		return true, time.Time{}, nil
	}
	return !r.Alive(n), n.HeartbeatAt, nil
}

var _ vm.Placement = (*Registry)(nil)

// Choose is the cluster's placement (vm.Placement), run by the store
// inside a create's transaction: among alive, non-draining nodes with room
// for d (only that one when only is set), the one with the smallest share
// of its vCPUs allocated (spreading guests), ties broken by name.
func (r *Registry) Choose(nodes []store.Node, usage map[string]api.Quota, d api.Quota, only string) (string, error) {
	var cands []candidate
	for _, n := range nodes {
		if n.Draining || !r.Alive(n) || (only != "" && n.Name != only) {
			continue
		}
		u := usage[n.Name]
		cands = append(cands, candidate{name: n.Name, cap: Capacity{n.CPUs, n.MemoryMB, n.DiskGB},
			used: Capacity{u.CPUs, u.MemoryMB, u.DiskGB}})
	}
	name, ok := choose(cands, Demand{CPUs: d.CPUs, MemoryMB: d.MemoryMB, DiskGB: d.DiskGB})
	if !ok {
		return "", &vm.CapacityError{Demand: d, Nodes: len(cands)}
	}
	return name, nil
}

type candidate struct {
	name      string
	cap, used Capacity
}

// choose is the placement rule, apart from the store.
func choose(cands []candidate, d Demand) (string, bool) {
	var fit []candidate
	for _, c := range cands {
		if c.used.CPUs+d.CPUs <= c.cap.CPUs && c.used.MemoryMB+d.MemoryMB <= c.cap.MemoryMB &&
			c.used.DiskGB+d.DiskGB <= c.cap.DiskGB {
			fit = append(fit, c)
		}
	}
	if len(fit) == 0 {
		return "", false
	}
	sort.Slice(fit, func(i, j int) bool {
		// a/b < c/d without division: a*d < c*b (capacities are positive here).
		li := fit[i].used.CPUs * fit[j].cap.CPUs
		lj := fit[j].used.CPUs * fit[i].cap.CPUs
		if li != lj {
			return li < lj
		}
		return fit[i].name < fit[j].name
	})
	return fit[0].name, true
}

// HostCapacity measures this host: vCPUs are cpuFactor times the cores
// (guests time-share them), memory is MemTotal, disk the size of the file
// system holding dataDir (overlays are sparse, so size, not free space).
func HostCapacity(dataDir string, cpuFactor int) (Capacity, error) {
	if cpuFactor < 1 {
		cpuFactor = 1
	}
	c := Capacity{CPUs: runtime.NumCPU() * cpuFactor}
	mem, err := memTotalMB()
	if err != nil {
		return c, err
	}
	c.MemoryMB = mem
	var st syscall.Statfs_t
	if err := syscall.Statfs(dataDir, &st); err != nil {
		return c, fmt.Errorf("statfs %s: %w", dataDir, err)
	}
	c.DiskGB = int(st.Blocks * uint64(st.Bsize) >> 30)
	return c, nil
}

func memTotalMB() (int, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("memory size: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				return 0, fmt.Errorf("memory size: parse %q: %w", rest, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("memory size: no MemTotal in /proc/meminfo")
}
