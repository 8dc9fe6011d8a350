package server

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/api"
)

func (s *Server) listSSHKeys(c echo.Context) error {
	ks, err := s.cfg.Accounts.ListSSHKeys(c.Request().Context(), caller(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ks)
}

func (s *Server) addSSHKey(c echo.Context) error {
	var req api.SSHKeyRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	k, err := s.cfg.Accounts.AddSSHKey(c.Request().Context(), caller(c), req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, k)
}

func (s *Server) deleteSSHKey(c echo.Context) error {
	if err := s.cfg.Accounts.DeleteSSHKey(c.Request().Context(), caller(c), c.Param("name")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
