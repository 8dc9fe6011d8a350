package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vmdhq/vmd/pkg/cluster"
)

// ClusterSettings are the node's cluster flags.
type ClusterSettings struct {
	AdvertiseURL      string
	HeartbeatInterval time.Duration
	NodeTimeout       time.Duration
	CPUs              int
	MemoryMB          int
	DiskGB            int
}

// cpuOvercommit is how many vCPUs a core offers by default: guests mostly idle.
const cpuOvercommit = 4

func addClusterFlags(fs *pflag.FlagSet) {
	fs.String("advertise-url", "", "URL the other nodes reach this node's API on (default http://<listen>, the host name when listening on all addresses)")
	fs.Duration("heartbeat-interval", 2*time.Second, "how often this node records that it is alive")
	fs.Duration("node-timeout", 10*time.Second, "a node silent this long has its VMs shown as unknown and gets no new VMs")
	fs.Int("node-cpus", 0, fmt.Sprintf("vCPUs this node offers to guests (default %d× its cores)", cpuOvercommit))
	fs.Int("node-memory-mb", 0, "memory in MB this node offers to guests (default its total memory)")
	fs.Int("node-disk-gb", 0, "disk in GB this node offers to guests (default the size of the data dir's file system)")
}

func (s *settings) clusterSettings() ClusterSettings {
	v := s.v
	return ClusterSettings{AdvertiseURL: v.GetString("advertise-url"), HeartbeatInterval: v.GetDuration("heartbeat-interval"),
		NodeTimeout: v.GetDuration("node-timeout"), CPUs: v.GetInt("node-cpus"), MemoryMB: v.GetInt("node-memory-mb"),
		DiskGB: v.GetInt("node-disk-gb")}
}

// addNodeCmd adds `vmd node` and the cluster flags every command shares.
func addNodeCmd(root *cobra.Command, st *settings, stdout, stderr io.Writer) {
	addClusterFlags(root.PersistentFlags())
	root.AddCommand(newNodeCmd(st, stdout, stderr))
}

func newNodeCmd(st *settings, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "See and drain the nodes of a cluster (works on the data store directly)"}
	list := &cobra.Command{
		Use:   "list",
		Short: "List nodes with their capacity, allocation and status",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return withApp(c.Context(), st, stderr, func(a *app) error {
				return nodeList(c.Context(), a, stdout)
			})
		},
	}
	drain := func(use, short string, on bool) *cobra.Command {
		return &cobra.Command{
			Use:   use + " NAME",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				return withApp(c.Context(), st, stderr, func(a *app) error {
					if err := a.store.SetDraining(c.Context(), args[0], on); err != nil {
						return err
					}
					fmt.Fprintf(stdout, "node %s %s\n", args[0], map[bool]string{true: "draining: no new VMs are placed there",
						false: "accepts new VMs again"}[on])
					return nil
				})
			},
		}
	}
	cmd.AddCommand(list, drain("drain", "Stop placing new VMs on a node (its VMs keep running)", true),
		drain("undrain", "Place new VMs on a node again", false))
	return cmd
}

func nodeList(ctx context.Context, a *app, w io.Writer) error {
	ns, err := a.store.ListNodes(ctx)
	if err != nil {
		return err
	}
	usage, err := a.store.NodeUsage(ctx)
	if err != nil {
		return err
	}
	timeout := a.cfg.Cluster.NodeTimeout
	fmt.Fprintln(w, "NAME\tSTATUS\tADVERTISE_URL\tVMS\tCPUS\tMEMORY_MB\tDISK_GB\tHEARTBEAT")
	for _, n := range ns {
		status := "ready"
		if time.Since(n.HeartbeatAt) > timeout {
			status = "down"
		}
		if n.Draining {
			status += ",draining"
		}
		u := usage[n.Name]
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d/%d\t%d/%d\t%d/%d\t%s\n", n.Name, status, n.AdvertiseURL, u.VMs,
			u.CPUs, n.CPUs, u.MemoryMB, n.MemoryMB, u.DiskGB, n.DiskGB, n.HeartbeatAt.Format(time.RFC3339))
	}
	return nil
}

// advertiseURL is --advertise-url, or this node's listen address.
func (c ClusterSettings) advertiseURL(listen string) string {
	if c.AdvertiseURL != "" {
		return c.AdvertiseURL
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

// startCluster registers this node and heartbeats until the returned stop is called.
func startCluster(ctx context.Context, a *app, log *slog.Logger) (*cluster.Registry, func(), error) {
	cfg := a.cfg
	cs := cfg.Cluster
	capa, err := cluster.HostCapacity(cfg.DataDir, cpuOvercommit)
	if err != nil {
		return nil, nil, fmt.Errorf("node capacity: %w", err)
	}
	for _, o := range []struct {
		dst *int
		v   int
	}{{&capa.CPUs, cs.CPUs}, {&capa.MemoryMB, cs.MemoryMB}, {&capa.DiskGB, cs.DiskGB}} {
		if o.v > 0 {
			*o.dst = o.v
		}
	}
	secret, err := sessionSecret(cfg)
	if err != nil {
		return nil, nil, err
	}
	reg, err := cluster.New(cluster.Config{Store: a.store, Name: cfg.NodeName, AdvertiseURL: cs.advertiseURL(cfg.Listen),
		Capacity: capa, Interval: cs.HeartbeatInterval, Timeout: cs.NodeTimeout, Secret: secret, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	if err := reg.Register(ctx); err != nil {
		return nil, nil, err
	}
	log.Info("node registered", "node", cfg.NodeName, "advertise_url", cs.advertiseURL(cfg.Listen),
		"cpus", capa.CPUs, "memory_mb", capa.MemoryMB, "disk_gb", capa.DiskGB)
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = reg.Run(hctx) }()
	return reg, func() { cancel(); <-done }, nil
}
