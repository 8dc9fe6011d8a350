package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/console"
)

var errNoConsole = &api.StatusError{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable, Message: "the console is not enabled on this server"}

// consoleToken issues a console token for one of the caller's VMs.
func (s *Server) consoleToken(c echo.Context) error {
	if s.cfg.Console == nil {
		return errNoConsole
	}
	ctx := c.Request().Context()
	v, err := s.cfg.VMs.Lookup(ctx, caller(c), vmRef(c))
	if err != nil {
		return err
	}
	viewOnly := false
	if q := c.QueryParam("view_only"); q != "" {
		if viewOnly, err = strconv.ParseBool(q); err != nil {
			return errBadRequest("view_only must be true or false")
		}
	}
	res, err := s.cfg.Console.IssueWith(ctx, caller(c), callerSession(c).ID, v, console.IssueOptions{ViewOnly: viewOnly})
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, res)
}

// consoleWS opens a console WebSocket. The route is public because the
// console token is the authority; credentials sent along (a bearer token,
// or the browser's session cookie) must belong to the token's user. A stale
// cookie is ignored rather than refused: the browser sends it on its own.
func (s *Server) consoleWS(c echo.Context) error {
	if s.cfg.Console == nil {
		return errNoConsole
	}
	req := c.Request()
	authUser := ""
	token, viaCookie, err := credentials(req)
	if err != nil {
		return err
	}
	if token != "" {
		u, _, err := s.cfg.Accounts.Authenticate(req.Context(), token)
		switch {
		case err == nil:
			authUser = u.ID
			c.Set(ctxUser, u)
		case !viaCookie:
			return err // a bearer token that does not hold is refused
		}
	}
	return s.cfg.Console.ServeWS(c.Response(), req, c.Param("id"), authUser) // the mapper names the console's refusals
}

// consoleSessions lists who has the VM's console open (presence), for
// whoever may act on the VM; sessions live on the VM's own node.
func (s *Server) consoleSessions(c echo.Context) error {
	if s.cfg.Console == nil {
		return errNoConsole
	}
	ctx := c.Request().Context()
	v, err := s.cfg.VMs.Lookup(ctx, caller(c), vmRef(c))
	if err != nil {
		return err
	}
	out, err := s.cfg.Console.Presence(ctx, v.ID)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, out)
}

// createShareLink mints a view-only console link of one VM.
func (s *Server) createShareLink(c echo.Context) error {
	if s.cfg.Console == nil {
		return errNoConsole
	}
	var req api.CreateShareLinkRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	var ttl time.Duration
	if req.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(req.TTL); err != nil {
			return console.ErrLinkTTL
		}
	}
	ctx := c.Request().Context()
	v, err := s.cfg.VMs.Lookup(ctx, caller(c), vmRef(c))
	if err != nil {
		return err
	}
	l, err := s.cfg.Console.CreateLink(ctx, caller(c), v, ttl)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, l)
}

func (s *Server) listShareLinks(c echo.Context) error {
	if s.cfg.Console == nil {
		return errNoConsole
	}
	ctx := c.Request().Context()
	v, err := s.cfg.VMs.Lookup(ctx, caller(c), vmRef(c))
	if err != nil {
		return err
	}
	ls, err := s.cfg.Console.Links(ctx, caller(c), v)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ls)
}

func (s *Server) revokeShareLink(c echo.Context) error {
	if s.cfg.Console == nil {
		return errNoConsole
	}
	ctx := c.Request().Context()
	v, err := s.cfg.VMs.Lookup(ctx, caller(c), vmRef(c))
	if err != nil {
		return err
	}
	if err := s.cfg.Console.RevokeLink(ctx, caller(c), v, c.Param("link")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// shareLinkToken trades a share link's secret for a view-only console
// token; public, as the link is the authority.
func (s *Server) shareLinkToken(c echo.Context) error {
	if s.cfg.Console == nil {
		return errNoConsole
	}
	var req api.ShareLinkTokenRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	res, err := s.cfg.Console.LinkToken(c.Request().Context(), c.Param("id"), req.Link)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, res)
}
