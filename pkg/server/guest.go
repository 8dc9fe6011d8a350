package server

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/api"
)

// execVM runs a command in the caller's VM through its guest agent.
func (s *Server) execVM(c echo.Context) error {
	var r api.ExecRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	res, err := s.cfg.VMs.Exec(c.Request().Context(), caller(c), vmRef(c), r)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

// putFile streams the request body into a guest file (?path=/abs). The
// body is never held whole: it goes to the agent in chunks, and reading
// stops at the service's upload limit.
func (s *Server) putFile(c echo.Context) error {
	max := s.cfg.VMs.MaxUpload()
	if c.Request().ContentLength > max {
		return errUploadTooLarge(max)
	}
	body := http.MaxBytesReader(c.Response(), c.Request().Body, max)
	n, err := s.cfg.VMs.Upload(c.Request().Context(), caller(c), vmRef(c), c.QueryParam("path"), body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errUploadTooLarge(max)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.FileResponse{Path: c.QueryParam("path"), Size: n})
}

func errUploadTooLarge(max int64) error {
	return &api.StatusError{Status: http.StatusRequestEntityTooLarge, Code: api.CodeTooLarge,
		Message: "the upload is larger than this server allows (" + strconv.FormatInt(max, 10) + " bytes)"}
}

// getFile streams a guest file (?path=/abs) as the response body. Errors
// found before the first byte are answered as errors; a failure later can
// only cut the body short, which the client sees as a short read.
func (s *Server) getFile(c echo.Context) error {
	w := c.Response()
	_, err := s.cfg.VMs.Download(c.Request().Context(), caller(c), vmRef(c), c.QueryParam("path"), w, func() {
		w.Header().Set(echo.HeaderContentType, "application/octet-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	})
	if err != nil && w.Committed {
		s.log.Warn("file download cut off", "vm", vmRef(c), "err", err)
		return nil
	}
	return err
}
