package qemu

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/qga"
)

// Readiness timings: a ping is short so a guest without an agent costs
// little; addresses are asked for often until known, then now and then.
const (
	readyPoll     = 500 * time.Millisecond
	pingTimeout   = 1500 * time.Millisecond
	addrPollFirst = 2 * time.Second
	addrPollLater = 30 * time.Second
	// agentGrace is how long after the serial ready line an agent gets to
	// answer before the line alone makes the guest ready: agents start
	// after it, and ready is to mean exec works when the guest has one.
	agentGrace = 10 * time.Second
	// shutdownAsk bounds the guest-shutdown try of a stop: a guest whose
	// agent does not answer goes on to ACPI at once.
	shutdownAsk = 3 * time.Second
)

// Agent returns the guest agent client of a running guest: one per guest,
// as QEMU's socket serves one client at a time.
func (d *Driver) Agent(id string) (qga.Agent, error) {
	g := d.get(id)
	if g == nil || !g.alive() || g.agent == nil {
		return nil, fmt.Errorf("guest agent of %s: %w", id, vm.ErrNoGuest)
	}
	return g.agent, nil
}

// StopPath says, once, how the last Stop of id ended its guest.
func (d *Driver) StopPath(id string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.stops[id]
	delete(d.stops, id)
	return p
}

func (d *Driver) noteStop(id, path string) {
	d.mu.Lock()
	d.stops[id] = path
	d.mu.Unlock()
}

// withAgent gives g its guest agent client and starts watching for its
// readiness. serialFrom is where this boot's serial output starts (-1:
// the guest was adopted, its boot long past: the agent alone decides).
func (d *Driver) withAgent(g *guest, inv Invocation, serialFrom int64) {
	g.agent = qga.New(inv.QGA, qga.Options{})
	g.reset = make(chan struct{}, 1)
	g.stopping = make(chan struct{})
	go d.watchReady(g, inv.Serial, inv.ReadyLine, serialFrom)
}

// closeAgent ends g's agent connection (the guest is not affected).
func (g *guest) closeAgent() {
	if g.agent != nil {
		_ = g.agent.Close()
	}
}

// serialFromFile, in the runtime dir, keeps where this boot's serial output
// starts, so a vmd that adopts a guest still booting can tell its ready line.
const serialFromFile = "serial.from"

func (d *Driver) saveSerialFrom(id string, off int64) {
	p := filepath.Join(d.cfg.Layout.RuntimeDir(id), serialFromFile)
	if err := os.WriteFile(p, []byte(strconv.FormatInt(off, 10)), 0o600); err != nil {
		d.log.Warn("keep serial offset", "vm", id, "err", err)
	}
}

// loadSerialFrom is saveSerialFrom's offset, -1 when unknown (the agent
// alone then says ready).
func (d *Driver) loadSerialFrom(id string) int64 {
	b, err := os.ReadFile(filepath.Join(d.cfg.Layout.RuntimeDir(id), serialFromFile))
	if err != nil {
		return -1
	}
	off, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || off < 0 {
		return -1
	}
	return off
}

// serialSize is the serial log's size now: the start of the next boot's output.
func serialSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// watchReady reports, off the reconcile loop, when the guest becomes ready
// (its agent answers, or the serial port printed readyLine since
// serialFrom), and then the addresses its agent reports. A guest reset
// starts it over. It ends with the guest, or when a stop begins.
func (d *Driver) watchReady(g *guest, serial, readyLine string, serialFrom int64) {
	ready := false
	var lineSeen time.Time // when this boot's ready line was first seen
	var addrs []string
	nextAddr, addrWait := time.Now(), addrPollFirst
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		select {
		case <-g.exited:
			return
		case <-g.stopping:
			return
		case <-d.quit:
			return
		case <-g.reset:
			ready, lineSeen, addrs, nextAddr, addrWait = false, time.Time{}, nil, time.Now(), addrPollFirst
			serialFrom = serialSize(serial)
			d.saveSerialFrom(g.id, serialFrom)
			// A reset may come with the ready line already printed; the
			// log size read here is after the reset event, which is enough.
		case <-tick.C:
		}
		if !ready {
			if why := d.readyNow(g, serial, readyLine, serialFrom, &lineSeen); why != "" {
				ready = true
				d.emit(vm.GuestEvent{ID: g.id, Kind: vm.EventReady, Message: why})
			}
		}
		if ready && !time.Now().Before(nextAddr) {
			got, err := d.addresses(g)
			if err == nil && !slices.Equal(got, addrs) {
				addrs = got
				d.emit(vm.GuestEvent{ID: g.id, Kind: vm.EventAddresses, Addresses: got})
			}
			switch {
			case err == nil && len(got) > 0:
				addrWait = addrPollLater
			case err == nil:
				addrWait = addrPollFirst // no DHCP lease yet
			default:
				// No agent (a guest ready by its serial line): ask less and less often.
				addrWait = min(addrWait*2, addrPollLater)
			}
			nextAddr = time.Now().Add(addrWait)
		}
	}
}

// readyNow says why the guest is ready now, or "" when it is not yet.
// The serial line counts once agentGrace has passed since it was first
// seen (lineSeen) without an agent answering.
func (d *Driver) readyNow(g *guest, serial, readyLine string, from int64, lineSeen *time.Time) string {
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	err := g.agent.Ping(ctx)
	cancel()
	if err == nil {
		return "ready: the guest agent answers"
	}
	if lineSeen.IsZero() && readyLine != "" && from >= 0 && serialHas(serial, from, readyLine) {
		*lineSeen = time.Now()
	}
	if !lineSeen.IsZero() && time.Since(*lineSeen) >= agentGrace {
		return fmt.Sprintf("ready: the serial port printed %q (no guest agent answered within %s)", readyLine, agentGrace)
	}
	return ""
}

// serialHas reports whether the serial log holds line after offset from.
// Boots append to the same log, so only this boot's part is searched.
func serialHas(path string, from int64, line string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return false
	}
	// The ready line comes early in a boot; 4 MiB of output is plenty.
	b, err := io.ReadAll(io.LimitReader(f, 4<<20))
	if err != nil {
		return false
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		if string(bytes.TrimRight(l, "\r")) == line {
			return true
		}
	}
	return false
}

// addresses are the guest's addresses as its agent reports them, loopback
// and link-local left out.
func (d *Driver) addresses(g *guest) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	ifs, err := g.agent.NetworkInterfaces(ctx)
	if err != nil {
		return nil, err
	}
	return guestAddresses(ifs), nil
}

// guestAddresses lists the addresses of ifs in the agent's order, without
// loopback and link-local ones: nobody can reach a guest on those (vmd's
// guest network has no IPv6, yet Linux gives every NIC an fe80:: address
// a few seconds after it comes up), so listing them would only make the
// answer change under a caller that waits for the lease.
func guestAddresses(ifs []qga.Interface) []string {
	out := []string{}
	for _, ifc := range ifs {
		for _, p := range ifc.Addresses {
			if a := p.Addr(); a.IsLoopback() || a.IsLinkLocalUnicast() {
				continue
			}
			out = append(out, p.String())
		}
	}
	return out
}

// askShutdown asks the guest's agent to power down. It reports whether
// the agent took the request; the caller still waits for the exit.
func (d *Driver) askShutdown(ctx context.Context, g *guest) bool {
	if g.agent == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, shutdownAsk)
	defer cancel()
	if err := g.agent.Shutdown(ctx, qga.ShutdownPowerdown); err != nil {
		d.log.Info("stop: guest agent did not take guest-shutdown, using ACPI", "vm", g.id, "err", err)
		return false
	}
	return true
}

// FsFreeze freezes the guest's file systems through its agent (vm.Freezer:
// a disk snapshot of a running guest is then consistent); the caller must
// FsThaw whatever happens.
func (d *Driver) FsFreeze(ctx context.Context, id string) (int, error) {
	a, err := d.Agent(id)
	if err != nil {
		return 0, err
	}
	return a.FsFreeze(ctx)
}

// FsThaw thaws what FsFreeze froze.
func (d *Driver) FsThaw(ctx context.Context, id string) (int, error) {
	a, err := d.Agent(id)
	if err != nil {
		return 0, err
	}
	return a.FsThaw(ctx)
}

var _ vm.Freezer = (*Driver)(nil)
