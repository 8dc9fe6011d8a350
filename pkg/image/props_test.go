package image

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestTemplateProps(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	c := NewCatalog(filepath.Join(t.TempDir(), "images"))
	for _, name := range []string{"debian-12", "plain", "bad"} {
		makeQcow2(t, filepath.Join(src, name+".qcow2"), 1)
		if _, err := c.Import(ctx, name, filepath.Join(src, name+".qcow2")); err != nil {
			t.Fatal(err)
		}
	}
	deb, err := c.Get(ctx, "debian-12")
	if err != nil || deb.SSHUser != "debian" || deb.MinMemoryMB != 1024 {
		t.Fatalf("debian-12 = %+v, %v; want the built-in debian, 1024 MB", deb, err)
	}
	if p, _ := c.Get(ctx, "plain"); p.SSHUser != "" || p.MinMemoryMB != 0 {
		t.Fatalf("plain = %+v, want no properties", p)
	}
	if err := c.SetProps("plain", Props{SSHUser: "ubuntu", MinMemoryMB: 2048}); err != nil {
		t.Fatal(err)
	}
	if p, _ := c.Get(ctx, "plain"); p.SSHUser != "ubuntu" || p.MinMemoryMB != 2048 {
		t.Fatalf("plain after SetProps = %+v", p)
	}
	ts, err := c.List(ctx)
	if err != nil || len(ts) != 3 {
		t.Fatalf("list = %+v, %v (the sidecar is no template)", ts, err)
	}
	if err := c.SetProps("plain", Props{MinMemoryMB: -1}); err == nil {
		t.Fatal("negative minimum accepted")
	}
	if err := c.SetProps("missing", Props{}); err == nil {
		t.Fatal("props of a missing template accepted")
	}
	// A sidecar that is not JSON makes the template unusable, not silently defaulted.
	if err := os.WriteFile(c.Path("bad")+PropsExt, []byte("{nope"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "bad"); err == nil {
		t.Fatal("a broken sidecar was accepted")
	}
}
