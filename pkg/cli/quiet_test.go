package cli

import (
	"context"
	"testing"
)

func TestQuietFlag(t *testing.T) {
	tests := []struct {
		args      []string
		wantQuiet bool
		wantErr   string
	}{
		{args: []string{"version", "--client"}, wantQuiet: false, wantErr: "info\n"},
		{args: []string{"--quiet", "version", "--client"}, wantQuiet: true, wantErr: ""},
		{args: []string{"version", "--client", "-q"}, wantQuiet: true, wantErr: ""},
	}
	for _, tt := range tests {
		t.Run(tt.args[0]+tt.args[len(tt.args)-1], func(t *testing.T) {
			cleanEnv(t)
			ios, _, out, errOut := TestStreams()
			if code := Main(context.Background(), tt.args, ios, "1.2.3"); code != ExitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if ios.Quiet != tt.wantQuiet {
				t.Errorf("Quiet = %v, want %v", ios.Quiet, tt.wantQuiet)
			}
			if out.String() != "Client Version: 1.2.3\n" {
				t.Errorf("stdout = %q", out)
			}
			ios.Infof("info\n")
			if errOut.String() != tt.wantErr {
				t.Errorf("stderr = %q, want %q", errOut, tt.wantErr)
			}
		})
	}
}
