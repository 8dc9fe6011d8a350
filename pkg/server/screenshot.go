package server

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/vm"
)

// Screenshots a user may take per minute on one node: enough for a
// dashboard of live thumbnails (one per running VM every few seconds),
// while each costs QEMU a full-frame encode.
const DefaultScreenshotsPerMinute = 120

// screenshot answers a PNG of one of the caller's running VMs' screens.
func (s *Server) screenshot(c echo.Context) error {
	ctx := c.Request().Context()
	ok, retry, err := s.shots.Hit(ctx, "screenshot:"+caller(c).ID, s.shotLimit, time.Minute)
	if err != nil {
		return err
	}
	if !ok {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())+1))
		return &apiError{http.StatusTooManyRequests, api.CodeRateLimited, "too many screenshots: try again in a minute"}
	}
	png, err := s.cfg.VMs.Screenshot(ctx, caller(c), vmRef(c))
	if errors.Is(err, vm.ErrUnsupported) {
		return &apiError{http.StatusNotImplemented, api.CodeUnavailable, "this node cannot take screenshots"}
	}
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Blob(http.StatusOK, "image/png", png)
}

// onNode runs a request about one VM on the VM's own node, which holds its
// guest: the caller is authorized here first, the answer is passed back as
// it is.
func (s *Server) onNode(next echo.HandlerFunc) echo.HandlerFunc {
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
		return cl.Forward(c.Response(), c.Request(), v.Node, nil)
	}
}
