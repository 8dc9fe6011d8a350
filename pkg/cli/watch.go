package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
)

// watchTarget is what a watch follows: every VM of a list, or one VM.
type watchTarget struct {
	all bool   // every user's VMs (admins)
	ref string // one VM by name or id; "" for a list
}

// watchVMs prints the VMs as list or get would, then a line per change
// until ctx ends, like kubectl get --watch. Tables keep their columns;
// json prints one object per line (the VMs, then api.Change objects), yaml
// a document per object, name a name per change. The feed opens before the
// first read, so no change falls between the two.
func watchVMs(ctx context.Context, ios *IOStreams, now func() time.Time, format string, c *client.Client, target watchTarget) error {
	stream, err := c.OpenEvents(ctx, client.FromNow, target.all)
	if err != nil {
		return err
	}
	defer stream.Close()
	var vms []api.VM
	if target.ref != "" {
		vm, err := c.GetVM(ctx, target.ref)
		if err != nil {
			return err
		}
		vms = []api.VM{*vm}
	} else if vms, err = c.ListVMs(ctx, target.all); err != nil {
		return err
	}
	p := &watchPrinter{ios: ios, now: now, format: format}
	if err := p.start(vms); err != nil {
		return err
	}
	known := map[string]api.VM{}
	for _, vm := range vms {
		known[vm.ID] = vm
	}
	for ch := range stream.Changes() {
		if target.ref != "" && ch.VMID != vms[0].ID {
			continue
		}
		vm, ok := known[ch.VMID]
		if !ok {
			// A new VM: the change lacks its sizes, which the table shows.
			if full, err := c.GetVM(ctx, ch.VMID); err == nil {
				vm = *full
				vm.Events = nil
			} else {
				vm = api.VM{ID: ch.VMID, Name: ch.VMName, CreatedAt: ch.Time}
			}
		}
		vm.Name, vm.State, vm.DesiredState, vm.Message, vm.UpdatedAt = ch.VMName, ch.State, ch.DesiredState, ch.Message, ch.Time
		if ch.State == api.StateDeleted {
			delete(known, ch.VMID)
		} else {
			known[ch.VMID] = vm
		}
		if err := p.change(vm, ch); err != nil {
			return err
		}
		if target.ref != "" && ch.State == api.StateDeleted {
			return nil // nothing more can happen to that VM
		}
	}
	err = stream.Err()
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		// The user ended the watch.
		return nil
	}
	return err
}

// watchPrinter prints a watch's first state and then its changes.
type watchPrinter struct {
	ios    *IOStreams
	now    func() time.Time
	format string
	widths []int // of the table columns on a TTY
}

func (p *watchPrinter) start(vms []api.VM) error {
	switch p.format {
	case formatJSON, formatYAML:
		for _, vm := range vms {
			if err := p.object(vm); err != nil {
				return err
			}
		}
		return nil
	case formatName:
		return printVMs(p.ios, p.now(), p.format, vms, nil)
	}
	t := vmTable(p.ios, p.now(), vms, p.format == formatWide)
	if p.ios.OutTTY {
		p.widths = make([]int, len(t.header))
		p.widen(plain(t.header...))
		for _, r := range t.rows {
			p.widen(r)
		}
		p.line(plain(t.header...))
		for _, r := range t.rows {
			p.line(r)
		}
		return nil
	}
	return t.render(p.ios)
}

func (p *watchPrinter) change(vm api.VM, ch api.Change) error {
	switch p.format {
	case formatJSON, formatYAML:
		return p.object(ch)
	case formatName:
		_, err := fmt.Fprintln(p.ios.Out, vm.Name)
		return err
	}
	t := vmTable(p.ios, p.now(), []api.VM{vm}, p.format == formatWide)
	if !p.ios.OutTTY {
		return t.render(p.ios)
	}
	p.widen(t.rows[0])
	p.line(t.rows[0])
	return nil
}

// object prints v as one JSON line or one YAML document.
func (p *watchPrinter) object(v any) error {
	if p.format == formatYAML {
		if _, err := io.WriteString(p.ios.Out, "---\n"); err != nil {
			return err
		}
		return writeYAML(p.ios.Out, v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	_, err = fmt.Fprintf(p.ios.Out, "%s\n", b)
	return err
}

// widen grows the columns to fit cells; earlier lines keep their layout.
func (p *watchPrinter) widen(cells []cell) {
	for i, c := range cells {
		if i < len(p.widths) {
			p.widths[i] = max(p.widths[i], utf8.RuneCountInString(c.text))
		}
	}
}

// line prints one aligned row, as table.render does on a TTY.
func (p *watchPrinter) line(cells []cell) {
	var b strings.Builder
	pending := 0
	for i, c := range cells {
		if c.text != "" {
			b.WriteString(strings.Repeat(" ", pending))
			pending = 0
			if c.color != "" && p.ios.colorOn() {
				b.WriteString("\x1b[" + c.color + "m" + c.text + "\x1b[0m")
			} else {
				b.WriteString(c.text)
			}
		}
		if i < len(cells)-1 && i < len(p.widths) {
			pending += p.widths[i] - utf8.RuneCountInString(c.text) + 3
		}
	}
	b.WriteByte('\n')
	_, _ = io.WriteString(p.ios.Out, b.String())
}
