package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestGeneratedFresh regenerates the completions and man pages into a
// temporary directory and fails when the committed copies differ.
func TestGeneratedFresh(t *testing.T) {
	tests := []struct {
		name      string
		committed string
		gen       func(string) error
	}{
		{"completions", "../../completions", writeCompletions},
		{"man pages", "../../docs/man", writeMan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fresh := t.TempDir()
			if err := tt.gen(fresh); err != nil {
				t.Fatal(err)
			}
			want := readDir(t, fresh)
			got := readDir(t, tt.committed)
			for name, body := range want {
				if got[name] != body {
					t.Errorf("%s/%s is stale or missing: run `make completions man` and commit the result", tt.committed, name)
				}
			}
			for name := range got {
				if _, ok := want[name]; !ok {
					t.Errorf("%s/%s is no longer generated: run `make completions man` and commit the removal", tt.committed, name)
				}
			}
		})
	}
}

func TestGenerateReproducible(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, dir := range []string{a, b} {
		if err := writeMan(dir); err != nil {
			t.Fatal(err)
		}
	}
	ma, mb := readDir(t, a), readDir(t, b)
	if len(ma) == 0 {
		t.Fatal("no man pages generated")
	}
	for name, body := range ma {
		if mb[name] != body {
			t.Errorf("%s differs between two runs", name)
		}
	}
}

func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	files := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}
