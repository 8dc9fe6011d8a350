package server

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/account"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
)

func (s *Server) signup(c echo.Context) error {
	var req api.SignupRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	email, err := s.cfg.Accounts.Signup(c.Request().Context(), req.Email, req.Password)
	if err != nil {
		return err
	}
	// The same answer for a taken address: nothing here may tell them apart.
	return c.JSON(http.StatusCreated, api.SignupResponse{Email: email,
		Message: "check your e-mail for the verification link"})
}

func (s *Server) verify(c echo.Context) error {
	var req api.VerifyRequest
	if c.Request().Method == http.MethodGet {
		req.Token = c.QueryParam("token")
	} else if err := decode(c, &req); err != nil {
		return err
	}
	if err := s.cfg.Accounts.Verify(c.Request().Context(), req.Token); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "verified"})
}

func (s *Server) login(c echo.Context) error {
	var req api.LoginRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	kind := account.KindBrowser
	if req.Client == "cli" {
		kind = account.KindCLI
	}
	res, err := s.cfg.Accounts.Login(c.Request().Context(), req.Email, req.Password, c.RealIP(), kind)
	if err != nil {
		return err
	}
	if kind == account.KindBrowser {
		s.setSessionCookies(c, res.Token, res.CSRFToken, res.Session.ExpiresAt)
	}
	return c.JSON(http.StatusOK, api.LoginResponse{Token: res.Token, ExpiresAt: res.Session.ExpiresAt, CSRFToken: res.CSRFToken})
}

func (s *Server) logout(c echo.Context) error {
	if err := s.cfg.Accounts.Logout(c.Request().Context(), callerSession(c).ID); err != nil {
		return err
	}
	s.EndSessions(callerSession(c).ID)
	s.clearSessionCookies(c)
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) changePassword(c echo.Context) error {
	var req api.ChangePasswordRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := s.cfg.Accounts.ChangePassword(c.Request().Context(), caller(c), callerSession(c).ID,
		req.CurrentPassword, req.NewPassword); err != nil {
		return err
	}
	// The account service ended the user's other sessions.
	s.sessions.EndUser(caller(c).ID, callerSession(c).ID)
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) me(c echo.Context) error {
	// Read again: the authenticated user may be a second old, and its
	// usage changes with every create and delete.
	u, err := s.cfg.Accounts.FindUser(c.Request().Context(), caller(c).ID)
	if errors.Is(err, store.ErrNotFound) {
		return account.ErrUnauthenticated // deleted since
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, u.ToAPI())
}

func (s *Server) listVMs(c echo.Context) error {
	all := false
	if v := c.QueryParam("all"); v != "" {
		var err error
		if all, err = strconv.ParseBool(v); err != nil {
			return errBadRequest("all must be true or false")
		}
	}
	vms, err := s.cfg.VMs.List(c.Request().Context(), caller(c), all)
	if err != nil {
		return err
	}
	return writeVMJSON(c, http.StatusOK, vms)
}

func (s *Server) createVM(c echo.Context) error {
	var req api.CreateVMRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	create := s.cfg.VMs.Create
	if placedHere(c) {
		create = s.cfg.VMs.CreateHere
	}
	v, err := create(c.Request().Context(), caller(c).ID, req)
	if err != nil {
		return s.createElsewhere(c, req, err)
	}
	c.Response().Header().Set(echo.HeaderLocation, api.BasePath+"/vms/"+v.ID)
	return c.JSON(http.StatusCreated, v)
}

func (s *Server) getVM(c echo.Context) error {
	v, err := s.cfg.VMs.Get(c.Request().Context(), caller(c), vmRef(c))
	if err != nil {
		return err
	}
	return writeVMJSON(c, http.StatusOK, v)
}

func (s *Server) startVM(c echo.Context) error {
	v, err := s.cfg.VMs.Start(c.Request().Context(), caller(c), vmRef(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, v)
}

func (s *Server) stopVM(c echo.Context) error {
	force := false
	if f := c.QueryParam("force"); f != "" {
		var err error
		if force, err = strconv.ParseBool(f); err != nil {
			return errBadRequest("force must be true or false")
		}
	}
	v, err := s.cfg.VMs.Stop(c.Request().Context(), caller(c), vmRef(c), force)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, v)
}

func (s *Server) deleteVM(c echo.Context) error {
	v, err := s.cfg.VMs.Delete(c.Request().Context(), caller(c), vmRef(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, v)
}

func (s *Server) templates(c echo.Context) error {
	ts, err := s.cfg.VMs.Templates(c.Request().Context())
	if err != nil {
		return err
	}
	if ts == nil {
		ts = []api.Template{}
	}
	return c.JSON(http.StatusOK, ts)
}

func (s *Server) listUsers(c echo.Context) error {
	us, err := s.cfg.Accounts.ListUsers(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]api.User, 0, len(us))
	for _, u := range us {
		out = append(out, u.ToAPI())
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) setQuota(c echo.Context) error {
	var q api.Quota
	if err := decode(c, &q); err != nil {
		return err
	}
	u, err := s.cfg.Accounts.SetQuota(c.Request().Context(), vmRef(c), q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, u.ToAPI())
}

// setDisabled disables (every session of the user ends) or enables a user.
func (s *Server) setDisabled(disabled bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, err := s.cfg.Accounts.SetDisabled(c.Request().Context(), vmRef(c), disabled)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, u.ToAPI())
	}
}

// vmRef is the {id} path parameter, which may be a VM id or name.
func vmRef(c echo.Context) string {
	if p, err := url.PathUnescape(c.Param("id")); err == nil {
		return p
	}
	return c.Param("id")
}

var _ = store.ErrNotFound
