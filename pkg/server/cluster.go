package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/cluster"
)

// Cluster is what the server needs of the cluster (cluster.Registry):
// where a new VM goes, and a way to reach the node that owns a VM.
type Cluster interface {
	Local(node string) bool
	Place(ctx context.Context, d cluster.Demand) (string, error)
	Forward(w http.ResponseWriter, r *http.Request, node string, modify func(*http.Response) error) error
	SignPlacement(node string) string
	VerifyPlacement(h string) bool
}

// placed runs a create on the node placement picks: here, or proxied to
// that node with a signed placement header it honours without placing again.
func (s *Server) placed(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		cl := s.cfg.Cluster
		if cl == nil {
			return next(c)
		}
		req := c.Request()
		if h := req.Header.Get(cluster.PlaceHeader); h != "" {
			if !cl.VerifyPlacement(h) {
				return &api.StatusError{Status: http.StatusForbidden, Code: api.CodeForbidden, Message: "invalid " + cluster.PlaceHeader + " header"}
			}
			return next(c)
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return err // the body limit's error
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		var r api.CreateVMRequest
		if json.Unmarshal(body, &r) != nil {
			return next(c) // the handler reports what is wrong with it
		}
		d := cluster.Demand{CPUs: r.CPU, MemoryMB: r.MemoryMB, DiskGB: r.DiskGB}
		setDefault(&d.CPUs, api.DefaultCPU)
		setDefault(&d.MemoryMB, api.DefaultMemoryMB)
		setDefault(&d.DiskGB, api.DefaultDiskGB)
		node, err := cl.Place(req.Context(), d)
		if err != nil {
			return err // the mapper answers cluster.ErrNoCapacity with no_capacity
		}
		if cl.Local(node) {
			return next(c)
		}
		req.Header.Set(cluster.PlaceHeader, cl.SignPlacement(node))
		return cl.Forward(c.Response(), req, node, nil)
	}
}

func setDefault(v *int, d int) {
	if *v == 0 {
		*v = d
	}
}

// onOwner runs a console token request on the VM's own node, which holds
// its guest and its tokens. The caller is authorized here first; the links
// in the answer are rewritten to this node, so the WebSocket comes back
// through it too.
func (s *Server) onOwner(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		cl := s.cfg.Cluster
		if cl == nil {
			return next(c)
		}
		v, err := s.cfg.VMs.Lookup(c.Request().Context(), caller(c), vmRef(c))
		if err != nil {
			return err
		}
		if cl.Local(v.Node) {
			return next(c)
		}
		return cl.Forward(c.Response(), c.Request(), v.Node, s.rebaseConsole)
	}
}

// rebaseConsole points a console answer's links at this node's public URL.
func (s *Server) rebaseConsole(res *http.Response) error {
	if res.StatusCode != http.StatusOK {
		return nil
	}
	var cr api.ConsoleResponse
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&cr); err != nil {
		return err
	}
	res.Body.Close()
	base := strings.TrimRight(s.cfg.PublicURL, "/")
	if i := strings.Index(cr.URL, "/console/"); i >= 0 {
		cr.URL = base + cr.URL[i:]
	}
	if i := strings.Index(cr.WSURL, api.BasePath+"/vms/"); i >= 0 {
		ws := "ws" + strings.TrimPrefix(base, "http")
		cr.WSURL = ws + cr.WSURL[i:]
	}
	b, err := json.Marshal(cr)
	if err != nil {
		return err
	}
	res.Body = io.NopCloser(bytes.NewReader(b))
	res.ContentLength = int64(len(b))
	res.Header.Del("Content-Length")
	return nil
}

// wsOnOwner proxies a console WebSocket to the VM's own node; its token is
// checked there. The browser's Origin is checked here, against this
// node's public URL, and then dropped: the owner's may differ.
func (s *Server) wsOnOwner(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		cl := s.cfg.Cluster
		if cl == nil || s.cfg.Store == nil || !strings.HasPrefix(c.Param("id"), "vm_") {
			return next(c)
		}
		req := c.Request()
		v, err := s.cfg.Store.GetVM(req.Context(), c.Param("id"))
		if err != nil || cl.Local(v.Node) {
			return next(c) // an unknown VM fails there like any bad token
		}
		if o := req.Header.Get("Origin"); o != "" && !strings.EqualFold(o, s.origin) {
			return &api.StatusError{Status: http.StatusForbidden, Code: api.CodeForbidden, Message: "cross-origin console connection refused"}
		}
		req.Header.Del("Origin")
		return cl.Forward(c.Response(), req, v.Node, nil)
	}
}
