package server

import (
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/api"
)

func (s *Server) listSnapshots(c echo.Context) error {
	out, err := s.cfg.VMs.ListSnapshots(c.Request().Context(), caller(c), vmRef(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) createSnapshot(c echo.Context) error {
	var req api.CreateSnapshotRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	out, err := s.cfg.VMs.CreateSnapshot(c.Request().Context(), caller(c), vmRef(c), req)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, api.BasePath+"/vms/"+url.PathEscape(vmRef(c))+"/snapshots/"+out.Name)
	return c.JSON(http.StatusCreated, out)
}

func (s *Server) restoreSnapshot(c echo.Context) error {
	v, err := s.cfg.VMs.RestoreSnapshot(c.Request().Context(), caller(c), vmRef(c), snapRef(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, v)
}

func (s *Server) deleteSnapshot(c echo.Context) error {
	if err := s.cfg.VMs.DeleteSnapshot(c.Request().Context(), caller(c), vmRef(c), snapRef(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// snapRef is the {snap} path parameter.
func snapRef(c echo.Context) string {
	if p, err := url.PathUnescape(c.Param("snap")); err == nil {
		return p
	}
	return c.Param("snap")
}
