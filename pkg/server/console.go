package server

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/api"
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
	res, err := s.cfg.Console.Issue(ctx, caller(c), callerSession(c).ID, v)
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
