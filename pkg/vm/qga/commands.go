package qga

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"
)

// Info is guest-info's answer.
type Info struct {
	Version  string    `json:"version"`
	Commands []Command `json:"supported_commands"`
}

// Command is one entry of guest-info's supported_commands.
type Command struct {
	Name            string `json:"name"`
	Enabled         bool   `json:"enabled"`
	SuccessResponse bool   `json:"success-response"`
}

// Supports tells whether the agent has the command and has it enabled, so
// a caller can pick a fallback (ACPI instead of guest-shutdown) up front.
func (i *Info) Supports(name string) bool {
	for _, c := range i.Commands {
		if c.Name == name {
			return c.Enabled
		}
	}
	return false
}

// Ping implements Agent.
func (c *Client) Ping(ctx context.Context) error {
	return c.call(ctx, "guest-ping", nil, nil)
}

// Info implements Agent.
func (c *Client) Info(ctx context.Context) (*Info, error) {
	var info Info
	if err := c.call(ctx, "guest-info", nil, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// Interface is one guest network interface.
type Interface struct {
	Name         string
	HardwareAddr net.HardwareAddr // nil when the agent reports none
	Addresses    []netip.Prefix   // address and prefix length, e.g. 10.0.2.15/24
}

// NetworkInterfaces implements Agent. Addresses the agent reports in a form
// netip does not parse are left out rather than failing the whole answer.
func (c *Client) NetworkInterfaces(ctx context.Context) ([]Interface, error) {
	var raw []struct {
		Name        string `json:"name"`
		HardwareAdr string `json:"hardware-address"`
		IPAddresses []struct {
			Type    string `json:"ip-address-type"`
			Address string `json:"ip-address"`
			Prefix  int    `json:"prefix"`
		} `json:"ip-addresses"`
	}
	if err := c.call(ctx, "guest-network-get-interfaces", nil, &raw); err != nil {
		return nil, err
	}
	out := make([]Interface, 0, len(raw))
	for _, r := range raw {
		ifc := Interface{Name: r.Name}
		if mac, err := net.ParseMAC(r.HardwareAdr); err == nil {
			ifc.HardwareAddr = mac
		}
		for _, a := range r.IPAddresses {
			addr, err := netip.ParseAddr(a.Address)
			if err != nil {
				continue
			}
			if p := netip.PrefixFrom(addr.WithZone(""), a.Prefix); p.IsValid() {
				ifc.Addresses = append(ifc.Addresses, p)
			}
		}
		out = append(out, ifc)
	}
	return out, nil
}

// ShutdownMode is guest-shutdown's mode.
type ShutdownMode string

// The modes of guest-shutdown.
const (
	ShutdownPowerdown ShutdownMode = "powerdown"
	ShutdownHalt      ShutdownMode = "halt"
	ShutdownReboot    ShutdownMode = "reboot"
)

// shutdownReplyWait is how long Shutdown waits for an error reply before it
// takes the agent's silence as success. qemu-ga answers at once when it
// cannot run shutdown(8); behind QEMU's socket the connection does not end
// when the guest goes down, so there is no EOF to wait for.
const shutdownReplyWait = time.Second

// Shutdown implements Agent.
func (c *Client) Shutdown(ctx context.Context, mode ShutdownMode) error {
	if mode == "" {
		mode = ShutdownPowerdown
	}
	const cmd = "guest-shutdown"
	if err := c.acquire(ctx, cmd); err != nil {
		return err
	}
	defer c.release()
	// Silence will count as success, so first make sure the agent answers
	// at all: a fresh connection's handshake proves it a moment ago. The
	// agent is going away: whatever happens, the next call dials again.
	c.drop()
	if err := c.connect(ctx); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	defer c.drop()
	wctx, cancel := context.WithTimeout(ctx, shutdownReplyWait)
	defer cancel()
	err := c.cn.roundTrip(wctx, cmd, map[string]ShutdownMode{"mode": mode}, nil)
	var qe *Error
	var we writeError
	switch {
	case err == nil, errors.As(err, &qe):
		return err
	case errors.As(err, &we):
		return c.explain(ctx, cmd, err) // never reached the agent
	case c.life.Err() != nil:
		return ErrClosed
	case wctx.Err() != nil, errors.Is(err, io.EOF), errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, net.ErrClosed):
		return nil // silence or hang-up: the guest is on its way down
	default:
		return c.explain(ctx, cmd, err)
	}
}

// FreezeStatus is guest-fsfreeze-status's answer.
type FreezeStatus string

// The states of the guest's filesystems.
const (
	Thawed FreezeStatus = "thawed"
	Frozen FreezeStatus = "frozen"
)

// FsFreeze implements Agent.
func (c *Client) FsFreeze(ctx context.Context) (int, error) {
	var n int
	err := c.call(ctx, "guest-fsfreeze-freeze", nil, &n)
	return n, err
}

// FsThaw implements Agent.
func (c *Client) FsThaw(ctx context.Context) (int, error) {
	var n int
	err := c.call(ctx, "guest-fsfreeze-thaw", nil, &n)
	return n, err
}

// FsFreezeStatus implements Agent.
func (c *Client) FsFreezeStatus(ctx context.Context) (FreezeStatus, error) {
	var s FreezeStatus
	err := c.call(ctx, "guest-fsfreeze-status", nil, &s)
	return s, err
}
