package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/cluster"
	"github.com/vmdhq/vmd/pkg/vm"
)

// Cluster is what the server needs of the cluster (cluster.Registry): a
// way to reach the node that owns a VM, and signed placements. Placement
// itself is the VM service's (vm.Service.Create).
type Cluster interface {
	Local(node string) bool
	Forward(w http.ResponseWriter, r *http.Request, node string, modify func(*http.Response) error) error
	SignPlacement(node string) string
	VerifyPlacement(h string) bool
}

// ctxPlacedHere marks a create that another node placed on this one.
const ctxPlacedHere = "vmd.placed_here"

// placed checks a forwarded create's signed placement: a valid one makes
// the create run here (vm.Service.CreateHere), anything else is refused.
func (s *Server) placed(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		cl := s.cfg.Cluster
		h := c.Request().Header.Get(cluster.PlaceHeader)
		if cl == nil || h == "" {
			return next(c)
		}
		if !cl.VerifyPlacement(h) {
			return &api.StatusError{Status: http.StatusForbidden, Code: api.CodeForbidden, Message: "invalid " + cluster.PlaceHeader + " header"}
		}
		c.Set(ctxPlacedHere, true)
		return next(c)
	}
}

// placedHere reports whether placed verified a placement on this node.
func placedHere(c echo.Context) bool {
	here, _ := c.Get(ctxPlacedHere).(bool)
	return here
}

// createElsewhere acts on the VM service's placement: a VM placed on
// another node is created by that node, given the request (decoded once,
// here, and encoded again) with a signed placement; no room anywhere is
// no_capacity.
func (s *Server) createElsewhere(c echo.Context, r api.CreateVMRequest, err error) error {
	var ee *vm.ElsewhereError
	cl := s.cfg.Cluster
	if errors.As(err, &ee) && cl != nil {
		body, merr := json.Marshal(r)
		if merr != nil {
			return merr
		}
		req := c.Request()
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		req.Header.Set(echo.HeaderContentLength, strconv.Itoa(len(body)))
		req.Header.Set(cluster.PlaceHeader, cl.SignPlacement(ee.Node))
		return cl.Forward(c.Response(), req, ee.Node, nil)
	}
	return err // no room anywhere: the mapper answers no_capacity
}

// onOwner runs a console token request on the VM's own node, which holds
// its guest and its tokens. The caller is authorized here first; the links
// in the answer are rewritten to this node, so the WebSocket comes back
// through it too.
func (s *Server) onOwner(next echo.HandlerFunc) echo.HandlerFunc {
	return s.toOwner(next, s.rebaseConsole)
}

// onVMNode runs a request about one VM on the node that runs it (exec and
// files reach its agent there, logs its serial port, snapshots its disk)
// and passes the answer back unchanged.
func (s *Server) onVMNode(next echo.HandlerFunc) echo.HandlerFunc { return s.toOwner(next, nil) }

// toOwner authorizes the caller on the VM here, then runs next on this
// node or forwards the request to the VM's, modify editing its answer.
func (s *Server) toOwner(next echo.HandlerFunc, modify func(*http.Response) error) echo.HandlerFunc {
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
		return cl.Forward(c.Response(), c.Request(), v.Node, modify)
	}
}

// rebaseConsole points a console (or port-forward) answer's links at this
// node's public URL; the answer's other fields pass as they are.
func (s *Server) rebaseConsole(res *http.Response) error {
	if res.StatusCode != http.StatusOK {
		return nil
	}
	var cr map[string]any
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&cr); err != nil {
		return err
	}
	res.Body.Close()
	base := strings.TrimRight(s.cfg.PublicURL, "/")
	if u, _ := cr["url"].(string); u != "" {
		if i := strings.Index(u, "/console/"); i >= 0 {
			cr["url"] = base + u[i:]
		}
	}
	if u, _ := cr["ws_url"].(string); u != "" {
		if i := strings.Index(u, api.BasePath+"/vms/"); i >= 0 {
			cr["ws_url"] = "ws" + strings.TrimPrefix(base, "http") + u[i:]
		}
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
// checked there. The console tells which VM the token opens (without
// spending it); the browser's Origin is checked here with the console's own
// rule, against this node's public URL, and then dropped: the owner's may
// differ.
func (s *Server) wsOnOwner(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		cl := s.cfg.Cluster
		if cl == nil || s.cfg.Console == nil {
			return next(c)
		}
		req := c.Request()
		v, err := s.cfg.Console.TokenVM(req.Context(), req)
		if err != nil || v.ID != c.Param("id") || cl.Local(v.Node) {
			return next(c) // a bad token fails there, with its reason
		}
		if err := s.cfg.Console.CheckOrigin(req); err != nil {
			return err // the mapper names the console's refusals
		}
		req.Header.Del("Origin")
		return cl.Forward(c.Response(), req, v.Node, nil)
	}
}
