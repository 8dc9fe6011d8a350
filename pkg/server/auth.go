package server

import (
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/account"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
)

// Cookie and header names of browser sessions.
const (
	SessionCookie = "vmd_session"
	CSRFCookie    = "vmd_csrf"
	CSRFHeader    = "X-CSRF-Token"
)

const (
	ctxUser    = "vmd.user"
	ctxSession = "vmd.session"
)

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// authenticate accepts a bearer token or the session cookie. Cookie calls
// with unsafe methods must also carry the session's CSRF token and must not
// come from another site (Fetch Metadata), since the browser sends the
// cookie on its own.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		token, viaCookie, err := credentials(req)
		if err != nil {
			return err
		}
		if token == "" {
			return account.ErrUnauthenticated
		}
		u, sess, err := s.cfg.Accounts.Authenticate(req.Context(), token)
		if err != nil {
			return err
		}
		if viaCookie && !safeMethod(req.Method) {
			if req.Header.Get("Sec-Fetch-Site") == "cross-site" ||
				!s.cfg.Accounts.CheckCSRF(sess.ID, req.Header.Get(CSRFHeader)) {
				return &api.StatusError{Status: http.StatusForbidden, Code: api.CodeCSRF,
					Message: "missing or wrong CSRF token: send the " + CSRFHeader + " header with the value of the " + CSRFCookie + " cookie"}
			}
		}
		c.Set(ctxUser, u)
		c.Set(ctxSession, sess)
		return next(c)
	}
}

// credentials finds a request's session token: the bearer token, else the
// session cookie (viaCookie). A malformed Authorization header is an error;
// no credentials at all is an empty token.
func credentials(req *http.Request) (token string, viaCookie bool, err error) {
	if h := req.Header.Get(echo.HeaderAuthorization); h != "" {
		scheme, rest, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(rest) == "" {
			return "", false, account.ErrUnauthenticated
		}
		return strings.TrimSpace(rest), false, nil
	}
	if ck, err := req.Cookie(SessionCookie); err == nil {
		return ck.Value, true, nil
	}
	return "", false, nil
}

func requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !caller(c).Admin {
			return &api.StatusError{Status: http.StatusForbidden, Code: api.CodeForbidden, Message: "forbidden: this needs an admin"}
		}
		return next(c)
	}
}

func caller(c echo.Context) store.User {
	u, _ := c.Get(ctxUser).(store.User)
	return u
}

func callerSession(c echo.Context) store.Session {
	s, _ := c.Get(ctxSession).(store.Session)
	return s
}

func (s *Server) setSessionCookies(c echo.Context, token, csrf string, expires time.Time) {
	c.SetCookie(&http.Cookie{Name: SessionCookie, Value: token, Path: "/", Expires: expires,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	// Readable by the page's script, which echoes it in the CSRF header.
	c.SetCookie(&http.Cookie{Name: CSRFCookie, Value: csrf, Path: "/", Expires: expires,
		Secure: s.secure, SameSite: http.SameSiteLaxMode})
}

func (s *Server) clearSessionCookies(c echo.Context) {
	for _, name := range []string{SessionCookie, CSRFCookie} {
		c.SetCookie(&http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: name == SessionCookie,
			Secure: s.secure, SameSite: http.SameSiteLaxMode})
	}
}
