package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/api"
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
		return &api.StatusError{Status: http.StatusTooManyRequests, Code: api.CodeRateLimited, Message: "too many screenshots: try again in a minute"}
	}
	png, err := s.cfg.VMs.Screenshot(ctx, caller(c), vmRef(c))
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Blob(http.StatusOK, "image/png", png)
}
