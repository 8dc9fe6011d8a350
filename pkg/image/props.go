package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/vmdhq/vmd/pkg/api"
)

// PropsExt is appended to a template's file name for its properties
// sidecar: {"ssh_user": "debian", "min_memory_mb": 1024}.
const PropsExt = ".json"

// Props are what a template says of itself beyond its bytes.
type Props struct {
	SSHUser     string `json:"ssh_user,omitempty"`
	MinMemoryMB int    `json:"min_memory_mb,omitempty"`
	// ReadyLine is the serial line that makes a guest without an agent ready.
	ReadyLine string `json:"ready_line,omitempty"`
}

// builtinProps are the properties of the templates this repository builds
// (make image, make image-debian), used when no sidecar says otherwise, so
// `vmd image import debian-12 images/debian-12.qcow2` needs no flags.
// debian-12 gets 1 GiB, what the image's own tests boot it with (systemd
// and cloud-init's Python; vmd's 256 MB default was not tried).
var builtinProps = map[string]Props{
	"tiny":      {SSHUser: "root"},
	"debian-12": {SSHUser: "debian", MinMemoryMB: 1024},
}

// maxPropsFile bounds the sidecar read.
const maxPropsFile = 4 << 10

// props returns template name's properties: its sidecar, else the built-in ones.
func (c *Catalog) props(name string) (Props, error) {
	f, err := os.Open(c.Path(name) + PropsExt)
	if errors.Is(err, fs.ErrNotExist) {
		return builtinProps[name], nil
	}
	if err != nil {
		return Props{}, fmt.Errorf("template %s properties: %w", name, err)
	}
	defer f.Close()
	var p Props
	if err := json.NewDecoder(io.LimitReader(f, maxPropsFile)).Decode(&p); err != nil {
		return Props{}, fmt.Errorf("template %s properties %s: %w", name, f.Name(), err)
	}
	if p.MinMemoryMB < 0 || p.MinMemoryMB > api.MaxMemoryMB {
		return Props{}, fmt.Errorf("template %s properties: min_memory_mb %d out of range", name, p.MinMemoryMB)
	}
	return p, nil
}

// SetProps records template name's properties in its sidecar.
func (c *Catalog) SetProps(name string, p Props) error {
	if _, err := c.stat(name); err != nil {
		return err
	}
	if p.MinMemoryMB < 0 || p.MinMemoryMB > api.MaxMemoryMB {
		return fmt.Errorf("min memory %d MB: want 0 to %d", p.MinMemoryMB, api.MaxMemoryMB)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return writeFileAtomic(c.Path(name)+PropsExt, append(b, '\n'))
}

func withProps(t api.Template, p Props) api.Template {
	t.SSHUser, t.MinMemoryMB, t.ReadyLine = p.SSHUser, p.MinMemoryMB, p.ReadyLine
	return t
}
