package server

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/console"
	"github.com/vmdhq/vmd/pkg/vm"
)

// forwardPort is the port query parameter of a port-forward request.
func forwardPort(c echo.Context) (int, error) {
	p, err := strconv.Atoi(c.QueryParam("port"))
	if err != nil {
		return 0, &vm.ValidationError{Field: "port", Message: "must be a number between 1 and 65535"}
	}
	return p, console.CheckPort(p)
}

// portForwardToken issues a one-time port-forward link for a cookie
// (browser) client; a bearer client opens the WebSocket directly.
func (s *Server) portForwardToken(c echo.Context) error {
	if s.cfg.Console == nil {
		return errNoConsole
	}
	port, err := forwardPort(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	v, err := s.cfg.VMs.Lookup(ctx, caller(c), vmRef(c))
	if err != nil {
		return err
	}
	res, err := s.cfg.Console.IssuePortForward(ctx, caller(c), callerSession(c).ID, v, port)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, res)
}

// portForwardWS opens a port-forward WebSocket. Like the console's, the
// route is public: the authority is a one-time token or, without one, the
// request's bearer token (never a cookie alone, which a browser sends
// for any page). With a bearer token the VM is looked up as the caller's
// (another user's is not found) and the stream is proxied to its node.
func (s *Server) portForwardWS(c echo.Context) error {
	if s.cfg.Console == nil {
		return errNoConsole
	}
	port, err := forwardPort(c)
	if err != nil {
		return err
	}
	req := c.Request()
	ctx := req.Context()
	authUser := ""
	var bearer *console.Bearer
	token, viaCookie, err := credentials(req)
	if err != nil {
		return err
	}
	if token != "" {
		u, sess, err := s.cfg.Accounts.Authenticate(ctx, token)
		switch {
		case err == nil:
			authUser = u.ID
			c.Set(ctxUser, u)
			if !viaCookie {
				bearer = &console.Bearer{UserID: u.ID, SessionID: sess.ID}
			}
		case !viaCookie:
			return err // a bearer token that does not hold is refused
		}
	}
	vmID := c.Param("id")
	if bearer != nil && c.QueryParam("token") == "" {
		v, err := s.cfg.VMs.Lookup(ctx, caller(c), vmID)
		if err != nil {
			return err
		}
		vmID = v.ID
		if cl := s.cfg.Cluster; cl != nil && !cl.Local(v.Node) {
			if err := s.cfg.Console.CheckOrigin(req); err != nil {
				return err
			}
			req.Header.Del("Origin")
			return cl.Forward(c.Response(), req, v.Node, nil)
		}
	}
	return s.cfg.Console.ServePortForward(c.Response(), req, vmID, port, authUser, bearer)
}
