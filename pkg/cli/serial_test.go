package cli

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestParseLogs(t *testing.T) {
	tests := []struct {
		name    string
		argv    []string
		want    LogsOptions
		wantErr bool
	}{
		{"plain", []string{"web"}, LogsOptions{Name: "web"}, false},
		{"follow and tail", []string{"web", "-f", "--tail", "50"}, LogsOptions{Name: "web", Follow: true, Tail: 50}, false},
		{"tail too big", []string{"web", "--tail", "10001"}, LogsOptions{}, true},
		{"negative tail", []string{"web", "--tail", "-1"}, LogsOptions{}, true},
		{"no name", nil, LogsOptions{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parsedOptions(t, NewCmdLogs, tt.wantErr, tt.argv...)
			if tt.wantErr {
				return
			}
			if got.Name != tt.want.Name || got.Follow != tt.want.Follow || got.Tail != tt.want.Tail {
				t.Fatalf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestParseConsoleSerial(t *testing.T) {
	tests := []struct {
		argv          []string
		serial, write bool
		wantErr       bool
	}{
		{[]string{"web", "--serial"}, true, false, false},
		{[]string{"web", "--serial", "--write"}, true, true, false},
		{[]string{"web", "--write"}, false, false, true},
		{[]string{"web", "--serial", "--print-url"}, false, false, true},
		{[]string{"web", "--serial", "--tunnel"}, false, false, true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.argv, " "), func(t *testing.T) {
			got := parsedOptions(t, NewCmdConsole, tt.wantErr, tt.argv...)
			if tt.wantErr {
				return
			}
			if got.Serial != tt.serial || got.Write != tt.write {
				t.Fatalf("serial %v write %v", got.Serial, got.Write)
			}
		})
	}
}

// Ctrl-] detaches: what comes before it in the same read is still typed,
// what comes after it is not.
func TestTypeInto(t *testing.T) {
	var guest bytes.Buffer
	err := typeInto(&guest, strings.NewReader("ls\r\x1dexit\r"))
	if !errors.Is(err, errDetached) || guest.String() != "ls\r" {
		t.Fatalf("typeInto: %v, guest got %q", err, guest.String())
	}
	guest.Reset()
	if err := typeInto(&guest, strings.NewReader("uptime\r")); !errors.Is(err, io.EOF) || guest.String() != "uptime\r" {
		t.Fatalf("typeInto to EOF: %v, %q", err, guest.String())
	}
}
