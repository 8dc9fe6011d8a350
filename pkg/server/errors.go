package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"syscall"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/account"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
)

// apiError is an error that already knows its status and code.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Message }

func errBadRequest(format string, a ...any) error {
	return &apiError{http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf(format, a...)}
}

// Classifier lets a layer below name the API code of its own errors without
// knowing HTTP (the image catalog and driver register theirs in Config).
type Classifier func(err error) (status int, code string, ok bool)

// mapError is the one place errors become statuses and codes.
func (s *Server) mapError(err error) (int, string, string) {
	var ae *apiError
	var he *echo.HTTPError
	var te *account.ThrottledError
	var fe *account.FieldError
	var ve *vm.ValidationError
	var qe *vm.QuotaError
	var gfe *vm.GuestFileError
	var netErr net.Error
	switch {
	case errors.As(err, &ae):
		return ae.Status, ae.Code, ae.Message
	case errors.As(err, &he):
		code := map[int]string{404: api.CodeNotFound, 405: "method_not_allowed", 413: "request_too_large",
			401: api.CodeUnauthenticated, 403: api.CodeForbidden, 429: api.CodeRateLimited}[he.Code]
		if code == "" {
			code = api.CodeBadRequest
		}
		return he.Code, code, fmt.Sprint(he.Message)
	case errors.As(err, &te):
		return http.StatusTooManyRequests, api.CodeRateLimited, te.Error()
	case errors.As(err, &fe):
		return http.StatusUnprocessableEntity, api.CodeValidation, fe.Error()
	case errors.As(err, &ve):
		return http.StatusUnprocessableEntity, api.CodeValidation, ve.Error()
	case errors.Is(err, account.ErrInvalidCredentials):
		return http.StatusUnauthorized, api.CodeInvalidLogin, "invalid e-mail or password"
	case errors.Is(err, account.ErrUnverified):
		return http.StatusForbidden, api.CodeEmailUnverified, "e-mail address not verified: open the link in the verification e-mail first"
	case errors.Is(err, account.ErrDisabled):
		return http.StatusForbidden, api.CodeForbidden, "this account is disabled: ask an admin"
	case errors.Is(err, account.ErrUnauthenticated):
		return http.StatusUnauthorized, api.CodeUnauthenticated, "not authenticated: log in first"
	case errors.Is(err, account.ErrInvalidToken):
		return http.StatusBadRequest, api.CodeInvalidToken, "the token is invalid, used or expired"
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, api.CodeNotFound, err.Error()
	case errors.As(err, &qe):
		return http.StatusForbidden, api.CodeQuotaExceeded, qe.Error()
	case errors.Is(err, store.ErrQuotaExceeded):
		return http.StatusForbidden, api.CodeQuotaExceeded, "quota exceeded: delete a VM or ask an admin for a larger quota"
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, api.CodeConflict, err.Error()
	case errors.As(err, &gfe):
		status := http.StatusConflict
		code := api.CodeConflict
		switch {
		case errors.Is(err, fs.ErrPermission):
			status, code = http.StatusForbidden, api.CodeForbidden
		case errors.Is(err, fs.ErrNotExist):
			status, code = http.StatusNotFound, api.CodeNotFound
		}
		return status, code, gfe.Error()
	case errors.Is(err, vm.ErrAgentUnavailable):
		return http.StatusServiceUnavailable, api.CodeAgentUnavailable,
			"the guest agent is not answering: the guest has none, it is still booting, or it is stuck"
	case errors.Is(err, vm.ErrNotRunning):
		return http.StatusConflict, api.CodeConflict, err.Error()
	case errors.Is(err, vm.ErrTooManyGuestOps):
		return http.StatusTooManyRequests, api.CodeRateLimited, err.Error()
	case errors.Is(err, vm.ErrTooManyStreams):
		return http.StatusTooManyRequests, api.CodeRateLimited, err.Error()
	case errors.Is(err, vm.ErrForbidden):
		return http.StatusForbidden, api.CodeForbidden, "forbidden: this needs an admin"
	case errors.Is(err, vm.ErrNoSpace), errors.Is(err, syscall.ENOSPC):
		return http.StatusInsufficientStorage, api.CodeInsufficient, "the node has no room for this VM's disk; try a smaller disk or ask an admin"
	case errors.As(err, &netErr):
		// The database (or Redis) cannot be reached: the request may succeed later.
		return http.StatusServiceUnavailable, api.CodeUnavailable, "a backing service is unreachable; try again shortly"
	}
	for _, classify := range s.cfg.Classifiers {
		if status, code, ok := classify(err); ok {
			return status, code, err.Error()
		}
	}
	return http.StatusInternalServerError, api.CodeInternal, "internal error"
}

// handleError writes every error as the contract's JSON error shape.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, code, msg := s.mapError(err)
	rid := c.Response().Header().Get(echo.HeaderXRequestID)
	if status >= 500 {
		s.log.Error("request failed", "request_id", rid, "route", c.Path(), "err", err)
		if code == api.CodeInternal {
			msg = "internal error (request id " + rid + ")"
		}
	}
	var te *account.ThrottledError
	if errors.As(err, &te) {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(te.RetryAfter.Seconds())+1))
	}
	body := api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: msg, RequestID: rid}}
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(status)
	} else {
		err = c.JSON(status, body)
	}
	if err != nil {
		s.log.Warn("write error response", "err", err)
	}
}

// decode reads a JSON body strictly: unknown fields and trailing data are errors.
func decode(c echo.Context, v any) error {
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{http.StatusRequestEntityTooLarge, "request_too_large", "request body too large"}
		}
		return errBadRequest("invalid JSON body: %v", err)
	}
	if dec.More() {
		return errBadRequest("invalid JSON body: trailing data")
	}
	return nil
}

var _ = slog.Default
