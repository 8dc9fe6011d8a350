package server

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPISpec is the OpenAPI 3.0 document of /api/v1. TestOpenAPIMatchesRoutes
// fails when a route is missing from it or it lists one that does not exist;
// TestOpenAPISchemas does the same for the fields of the pkg/api types.
//
//go:embed openapi.json
var openAPISpec []byte

// openapi serves the embedded spec; it is public so tools can fetch it unauthenticated.
func (s *Server) openapi(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderCacheControl, "no-cache")
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPISpec)
}
