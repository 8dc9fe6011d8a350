package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/humanize"
)

// Output formats of -o.
const (
	formatTable = "table"
	formatWide  = "wide"
	formatJSON  = "json"
	formatYAML  = "yaml"
	formatName  = "name"
)

var outputFormats = []string{formatTable, formatWide, formatJSON, formatYAML, formatName}

// enumValue is a pflag.Value that accepts only its listed values, so a bad
// -o fails at parse time with a usage error.
type enumValue struct {
	p       *string
	allowed []string
}

func (e *enumValue) String() string { return *e.p }
func (e *enumValue) Type() string   { return "format" }
func (e *enumValue) Set(s string) error {
	for _, a := range e.allowed {
		if s == a {
			*e.p = s
			return nil
		}
	}
	return fmt.Errorf("valid values are %s", strings.Join(e.allowed, "|"))
}

// addOutputFlag adds -o/--output with completion of its values.
func addOutputFlag(cmd *cobra.Command, p *string) {
	*p = formatTable
	cmd.Flags().VarP(&enumValue{p: p, allowed: outputFormats}, "output", "o",
		"output format: "+strings.Join(outputFormats, "|"))
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return outputFormats, cobra.ShellCompDirectiveNoFileComp
	})
}

// writeJSON prints v as the API sent it, indented.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// writeYAML prints v with the same field names and order as its JSON, by
// reading the JSON as a YAML node tree and re-encoding it in block style.
func writeYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode yaml: %w", err)
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("encode yaml: %w", err)
	}
	blockStyle(&n)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return fmt.Errorf("encode yaml: %w", err)
	}
	return enc.Close()
}

// blockStyle drops JSON's flow style and quoting; the encoder quotes again
// where a plain scalar would change type.
func blockStyle(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode {
		if n.Tag == "!!str" && strings.Contains(n.Value, "\n") {
			n.Style = yaml.LiteralStyle
		} else {
			n.Style = 0
		}
	} else {
		n.Style = 0
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// cell is one table cell; color is an ANSI SGR code used only on a colour TTY.
type cell struct {
	text  string
	color string
}

// table prints aligned columns with a header on a TTY, and tab-separated
// rows without header or colour otherwise, like the GitHub CLI.
type table struct {
	header []string
	rows   [][]cell
}

func (t *table) add(cells ...cell) { t.rows = append(t.rows, cells) }

func plain(texts ...string) []cell {
	cs := make([]cell, len(texts))
	for i, s := range texts {
		cs[i] = cell{text: s}
	}
	return cs
}

func (t *table) render(ios *IOStreams) error {
	var b strings.Builder
	if !ios.OutTTY {
		for _, r := range t.rows {
			for i, c := range r {
				if i > 0 {
					b.WriteByte('\t')
				}
				b.WriteString(strings.NewReplacer("\t", " ", "\n", " ").Replace(c.text))
			}
			b.WriteByte('\n')
		}
		_, err := io.WriteString(ios.Out, b.String())
		return err
	}
	widths := make([]int, len(t.header))
	for i, h := range t.header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, r := range t.rows {
		for i, c := range r {
			if i < len(widths) && utf8.RuneCountInString(c.text) > widths[i] {
				widths[i] = utf8.RuneCountInString(c.text)
			}
		}
	}
	line := func(cells []cell) {
		// padding is held back until a non-empty cell follows, so empty
		// trailing cells leave no blanks at the end of the line
		pending := 0
		for i, c := range cells {
			if c.text != "" {
				b.WriteString(strings.Repeat(" ", pending))
				pending = 0
				if c.color != "" && ios.colorOn() {
					b.WriteString("\x1b[" + c.color + "m" + c.text + "\x1b[0m")
				} else {
					b.WriteString(c.text)
				}
			}
			if i < len(cells)-1 && i < len(widths) {
				pending += widths[i] - utf8.RuneCountInString(c.text) + 3
			}
		}
		b.WriteByte('\n')
	}
	line(plain(t.header...))
	for _, r := range t.rows {
		line(r)
	}
	_, err := io.WriteString(ios.Out, b.String())
	return err
}

// stateColor picks an SGR code for a VM state.
func stateColor(s api.State) string {
	switch s {
	case api.StateRunning:
		return "32" // green
	case api.StateError:
		return "31" // red
	case api.StateStopped:
		return "90" // grey
	case api.StatePaused:
		return "36" // cyan: frozen
	case api.StateDeleting:
		return "35"
	default:
		return "33" // yellow: on its way somewhere
	}
}

// timeCell shows an age on a TTY and an RFC 3339 time for scripts.
func timeCell(ios *IOStreams, now time.Time, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	if !ios.OutTTY {
		return t.UTC().Format(time.RFC3339)
	}
	return humanize.Age(now.Sub(t))
}

// expiresCell is a countdown on a TTY and an RFC 3339 time for scripts.
func expiresCell(ios *IOStreams, now time.Time, at *time.Time) string {
	if at != nil && !ios.OutTTY {
		return at.UTC().Format(time.RFC3339)
	}
	return humanize.Expires(now, at)
}

// humanBytes prints a size in binary units on a TTY and in bytes otherwise.
func humanBytes(ios *IOStreams, n int64) string {
	if !ios.OutTTY {
		return fmt.Sprint(n)
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// vmTable builds the rows of list and get.
func vmTable(ios *IOStreams, now time.Time, vms []api.VM, wide bool) *table {
	t := &table{header: []string{"NAME", "STATE", "TEMPLATE", "CPU", "MEMORY", "DISK", "AGE"}}
	if !ios.OutTTY {
		t.header[6] = "CREATED"
	}
	if wide {
		t.header = append(t.header, "ID", "OWNER", "NODE", "READY", "ADDRESSES", "MESSAGE")
		t.header = append(t.header, "EXPIRES")
	}
	for _, vm := range vms {
		row := []cell{
			{text: vm.Name},
			{text: string(vm.State), color: stateColor(vm.State)},
			{text: vm.Template},
			{text: fmt.Sprint(vm.CPU)},
			{text: fmt.Sprintf("%dMB", vm.MemoryMB)},
			{text: fmt.Sprintf("%dGB", vm.DiskGB)},
			{text: timeCell(ios, now, vm.CreatedAt)},
		}
		if wide {
			row = append(row, plain(vm.ID, vm.OwnerID, vm.Node, readyCell(vm), addressesCell(vm.Addresses), vm.Message)...)
			row = append(row, cell{text: expiresCell(ios, now, vm.ExpiresAt)})
		}
		t.add(row...)
	}
	return t
}

// printObjects prints the -o formats that are not a table: data (the API
// object itself) as JSON or YAML, or each item's name a line. It reports
// isTable, having printed nothing, for table and wide.
func printObjects[T any](ios *IOStreams, format string, data any, items []T, name func(T) string) (isTable bool, err error) {
	switch format {
	case formatJSON:
		return false, writeJSON(ios.Out, data)
	case formatYAML:
		return false, writeYAML(ios.Out, data)
	case formatName:
		for _, it := range items {
			if _, err := fmt.Fprintln(ios.Out, name(it)); err != nil {
				return false, err
			}
		}
		return false, nil
	}
	return true, nil
}

// createdHeader heads a creation time column: an age on a terminal, the
// time itself when piped.
func createdHeader(ios *IOStreams) string {
	if ios.OutTTY {
		return "AGE"
	}
	return "CREATED"
}

// printVMs prints vms in format; json and yaml print data, which is the
// API object itself (one VM for get/create, the array for list).
func printVMs(ios *IOStreams, now time.Time, format string, vms []api.VM, data any) error {
	if isTable, err := printObjects(ios, format, data, vms, func(vm api.VM) string { return vm.Name }); !isTable {
		return err
	}
	return vmTable(ios, now, vms, format == formatWide).render(ios)
}

// readyCell says whether a running VM's guest is ready; "-" when not running.
func readyCell(vm api.VM) string {
	switch {
	case vm.State != api.StateRunning:
		return "-"
	case vm.Ready:
		return "yes"
	}
	return "booting"
}

// addressesCell lists a VM's addresses without their prefix lengths.
func addressesCell(addrs []string) string {
	if len(addrs) == 0 {
		return "-"
	}
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i], _, _ = strings.Cut(a, "/")
	}
	return strings.Join(out, ",")
}
