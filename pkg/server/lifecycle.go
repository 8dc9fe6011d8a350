package server

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/api"
)

// pauseVM freezes a running VM: 202, as the reconciler of its node does it.
func (s *Server) pauseVM(c echo.Context) error {
	v, err := s.cfg.VMs.Pause(c.Request().Context(), caller(c), vmRef(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, v)
}

// resumeVM thaws a paused VM.
func (s *Server) resumeVM(c echo.Context) error {
	v, err := s.cfg.VMs.Resume(c.Request().Context(), caller(c), vmRef(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, v)
}

// extendVM makes a VM expire ttl from now: 200 with the new expires_at.
func (s *Server) extendVM(c echo.Context) error {
	var req api.ExtendRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	v, err := s.cfg.VMs.Extend(c.Request().Context(), caller(c), vmRef(c), req.TTL)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}
