package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/serial"
	"github.com/vmdhq/vmd/pkg/vm"
)

var errNoLogs = &api.StatusError{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable, Message: "serial logs are not served by this server"}

// vmLogs serves a VM's serial log as text: its last ?tail=N lines (all of
// its last MiB without), then, with ?follow=true, what the guest prints
// next until the VM is deleted, the caller's session ends, vmd shuts down
// or the client goes. It runs on the VM's node (onOwner).
func (s *Server) vmLogs(c echo.Context) error {
	l := s.cfg.Logs
	if l == nil {
		return errNoLogs
	}
	u := caller(c)
	ctx := c.Request().Context()
	v, err := s.cfg.VMs.Lookup(ctx, u, vmRef(c))
	if err != nil {
		return err
	}
	tail := 0
	if q := c.QueryParam("tail"); q != "" {
		if tail, err = strconv.Atoi(q); err != nil || tail < 0 || tail > serial.MaxTail {
			return errBadRequest("tail must be a line count between 0 and %d", serial.MaxTail)
		}
	}
	follow := false
	if q := c.QueryParam("follow"); q != "" {
		if follow, err = strconv.ParseBool(q); err != nil {
			return errBadRequest("follow must be true or false")
		}
	}
	var release func()
	if follow { // the cap is checked before anything is written
		if release, err = l.Reserve(u.ID); err != nil {
			return &api.StatusError{Status: http.StatusTooManyRequests, Code: api.CodeRateLimited, Message: "too many log follows open: close one first"}
		}
		defer release()
	}
	path := l.Path(v)
	b, end, err := l.Tail(path, tail)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/plain; charset=utf-8")
	h.Set(echo.HeaderCacheControl, "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if !follow {
		return c.Blob(http.StatusOK, "text/plain; charset=utf-8", b)
	}
	h.Set("X-Accel-Buffering", "no") // nginx would otherwise hold lines back
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer s.sessions.Add(callerSession(c).ID, u.ID, cancel)()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	c.Response().WriteHeader(http.StatusOK)
	rc := http.NewResponseController(c.Response())
	if _, err := c.Response().Write(b); err != nil {
		return nil
	}
	if err := rc.Flush(); err != nil {
		return nil
	}
	gone := func(ctx context.Context) bool {
		w, err := s.cfg.VMs.Lookup(ctx, u, v.ID)
		return errors.Is(err, vm.ErrNotFound) || (err == nil && w.State == api.StateDeleting)
	}
	if err := l.Follow(ctx, path, end, c.Response(), rc.Flush, gone); err != nil {
		s.log.Warn("logs: follow", "vm", v.ID, "err", err)
	}
	return nil
}
