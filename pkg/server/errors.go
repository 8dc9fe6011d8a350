package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/account"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/console"
	"github.com/vmdhq/vmd/pkg/image"
	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/vm"
)

func errBadRequest(format string, a ...any) error {
	return &api.StatusError{Status: http.StatusBadRequest, Code: api.CodeBadRequest, Message: fmt.Sprintf(format, a...)}
}

// mapError is the one place errors become statuses, codes and messages,
// for the API, the console, the template catalog and cluster forwarding.
// The message shown comes only from typed errors that carry a safe one
// (api.StatusError, validation and throttle errors); a sentinel gets a
// fixed sentence, never err.Error(): a wrapped chain holds store or driver
// text. Keep it one flat switch, a case a line where possible.
func (s *Server) mapError(err error) (int, string, string) {
	var (
		se     *api.StatusError
		he     *echo.HTTPError
		mbe    *http.MaxBytesError
		mte    *account.MailThrottledError
		te     *account.ThrottledError
		fe     *account.FieldError
		ve     *vm.ValidationError
		qe     *vm.QuotaError
		nte    *vm.NameTakenError
		vce    *vm.ConflictError
		sce    *vm.StateConflictError
		snf    *vm.SnapshotNotFoundError
		ce     *vm.CapacityError
		gfe    *vm.GuestFileError
		netErr net.Error
	)
	switch {
	case errors.As(err, &se):
		return se.Status, se.Code, se.Message
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, api.CodeTooLarge, "request body too large"
	case errors.As(err, &he):
		return echoError(he.Code)
	case errors.As(err, &mte):
		return http.StatusTooManyRequests, api.CodeRateLimited, mte.Error()
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
	// The console's refusals (pkg/console); their sentinels' own sentences are written for users.
	case errors.Is(err, console.ErrSessionEnded):
		return http.StatusForbidden, api.CodeInvalidToken, console.ErrSessionEnded.Error()
	case errors.Is(err, console.ErrTokenInvalid):
		return http.StatusForbidden, api.CodeInvalidToken, console.ErrTokenInvalid.Error()
	case errors.Is(err, console.ErrOrigin):
		return http.StatusForbidden, api.CodeForbidden, console.ErrOrigin.Error()
	case errors.Is(err, console.ErrWrongUser):
		return http.StatusForbidden, api.CodeForbidden, "the console token belongs to another user, or a client without an Origin header sent no bearer token"
	case errors.Is(err, console.ErrNotRunning):
		return http.StatusConflict, api.CodeConflict, console.ErrNotRunning.Error()
	case errors.Is(err, console.ErrTooManySessions):
		return http.StatusTooManyRequests, api.CodeRateLimited, console.ErrTooManySessions.Error()
	case errors.Is(err, console.ErrUnavailable):
		return http.StatusServiceUnavailable, api.CodeUnavailable, "the vm's console cannot be reached right now; try again shortly"
	case errors.Is(err, console.ErrNoNetwork):
		return http.StatusConflict, api.CodeConflict, console.ErrNoNetwork.Error()
	case errors.Is(err, console.ErrNoForward):
		return http.StatusServiceUnavailable, api.CodeUnavailable, console.ErrNoForward.Error()
	case errors.Is(err, console.ErrPortClosed):
		return http.StatusBadGateway, api.CodePortClosed, console.ErrPortClosed.Error()
	case errors.Is(err, console.ErrNoLease):
		return http.StatusServiceUnavailable, api.CodeUnavailable, console.ErrNoLease.Error()
	case errors.Is(err, console.ErrGuestUnreachable):
		return http.StatusBadGateway, api.CodeUnavailable, console.ErrGuestUnreachable.Error()
	case errors.Is(err, console.ErrNotWebSocket):
		return http.StatusUpgradeRequired, api.CodeBadRequest, console.ErrNotWebSocket.Error()
	case errors.Is(err, console.ErrBadHandshake):
		return http.StatusBadRequest, api.CodeBadRequest, "unsupported websocket handshake: version 13 with a Sec-WebSocket-Key is needed"
	// The template catalog (pkg/image).
	case errors.Is(err, image.ErrNotFound):
		return http.StatusNotFound, api.CodeNotFound, "template not found"
	case errors.Is(err, image.ErrInvalidName):
		return http.StatusUnprocessableEntity, api.CodeValidation, image.ErrInvalidName.Error()
	case errors.Is(err, image.ErrExists):
		return http.StatusConflict, api.CodeConflict, "template already exists"
	// A node's copy of a template is unusable until an operator replaces it; the request itself was fine.
	case errors.Is(err, image.ErrChecksumMismatch):
		return http.StatusServiceUnavailable, api.CodeTemplateInvalid, "the template's file on this node does not match its recorded sha256; an operator must replace it"
	case errors.Is(err, image.ErrCorrupt):
		return http.StatusServiceUnavailable, api.CodeTemplateInvalid, "the template's file on this node is not a usable qcow2 image; an operator must replace it"
	case errors.As(err, &ce):
		return http.StatusServiceUnavailable, api.CodeNoCapacity, ce.Error()
	case errors.Is(err, vm.ErrNoCapacity):
		return http.StatusServiceUnavailable, api.CodeNoCapacity, "no node has room for this vm"
	case errors.Is(err, store.ErrUnavailable):
		return http.StatusServiceUnavailable, api.CodeUnavailable, "the database is unreachable; try again shortly"
	case errors.As(err, &snf):
		return http.StatusNotFound, api.CodeNotFound, snf.Error()
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, api.CodeNotFound, "not found"
	case errors.As(err, &qe):
		return http.StatusForbidden, api.CodeQuotaExceeded, qe.Error()
	case errors.Is(err, store.ErrQuotaExceeded):
		return http.StatusForbidden, api.CodeQuotaExceeded, "quota exceeded: delete a VM or ask an admin for a larger quota"
	case errors.As(err, &nte):
		return http.StatusConflict, api.CodeConflict, nte.Error()
	case errors.As(err, &vce):
		return http.StatusConflict, api.CodeConflict, vce.Message
	case errors.As(err, &sce):
		return http.StatusConflict, api.CodeConflict, sce.Error()
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, api.CodeConflict, "that conflicts with an existing object (a name already taken?)"
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
		return http.StatusConflict, api.CodeConflict, "the vm is not running: start it first"
	case errors.Is(err, vm.ErrTooManyGuestOps):
		return http.StatusTooManyRequests, api.CodeRateLimited, "too many guest agent operations at once: wait for one to end"
	case errors.Is(err, vm.ErrUnsupported):
		return http.StatusNotImplemented, api.CodeUnavailable, "this node's driver cannot do that (a screenshot, say)"
	case errors.Is(err, vm.ErrTooManyStreams):
		return http.StatusTooManyRequests, api.CodeRateLimited, "too many open event streams: close one first"
	case errors.Is(err, vm.ErrForbidden):
		return http.StatusForbidden, api.CodeForbidden, "forbidden: this needs an admin"
	case errors.Is(err, vm.ErrNoSpace), errors.Is(err, syscall.ENOSPC):
		return http.StatusInsufficientStorage, api.CodeInsufficient, "the node has no room for this VM's disk; try a smaller disk or ask an admin"
	case errors.As(err, &netErr):
		// A backing service (Redis, another node) cannot be reached: the request may succeed later.
		return http.StatusServiceUnavailable, api.CodeUnavailable, "a backing service is unreachable; try again shortly"
	}
	return http.StatusInternalServerError, api.CodeInternal, "internal error"
}

// echoError names the router's own errors (no such route, wrong method,
// the body limit) with fixed sentences.
func echoError(status int) (int, string, string) {
	switch status {
	case http.StatusNotFound:
		return status, api.CodeNotFound, "no such route"
	case http.StatusMethodNotAllowed:
		return status, api.CodeMethodNotAllowed, "method not allowed on this route"
	case http.StatusRequestEntityTooLarge:
		return status, api.CodeTooLarge, "request body too large"
	case http.StatusUnauthorized:
		return status, api.CodeUnauthenticated, "not authenticated: log in first"
	case http.StatusForbidden:
		return status, api.CodeForbidden, "forbidden"
	case http.StatusTooManyRequests:
		return status, api.CodeRateLimited, "too many requests; try again later"
	}
	if status >= 500 {
		return http.StatusInternalServerError, api.CodeInternal, "internal error"
	}
	return http.StatusBadRequest, api.CodeBadRequest, "bad request"
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
	switch {
	case errors.As(err, &te):
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(te.RetryAfter.Seconds())+1))
	case errors.Is(err, console.ErrBadHandshake):
		c.Response().Header().Set("Sec-WebSocket-Version", "13") // RFC 6455 4.4: name the version spoken
	}
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(status)
	} else {
		err = c.JSON(status, api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: msg, RequestID: rid, Field: errorField(err)}})
	}
	if err != nil {
		s.log.Warn("write error response", "request_id", rid, "err", err)
	}
}

// errorField names the request field a validation error is about, if any.
func errorField(err error) string {
	var fe *account.FieldError
	var ve *vm.ValidationError
	switch {
	case errors.As(err, &fe):
		return fe.Field
	case errors.As(err, &ve):
		return ve.Field
	}
	return ""
}

// maxDecodeMessage bounds the part of a JSON error quoted back to the
// caller (an unknown field's name comes from the body).
const maxDecodeMessage = 200

// decode reads a JSON body strictly: one JSON value, no unknown fields,
// nothing but white space after it. A body over the limit is the body
// limit's error (413); a body that cannot be read is not the caller's JSON
// and goes to the mapper as it is.
func decode(c echo.Context, v any) error {
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	// dec.More would let a stray '}' or ']' through: ask for the next token instead.
	switch _, err := dec.Token(); {
	case err == io.EOF:
		return nil
	case err == nil || isJSONError(err):
		return errBadRequest("invalid JSON body: data after the JSON value")
	default:
		return bodyError(err)
	}
}

// bodyError turns a decoder's error into the answer: the body limit's
// error goes on to the mapper (413), JSON that is wrong is a 400 saying
// how, and a body that could not be read is a 400 without the reader's
// text (it names addresses).
func bodyError(err error) error {
	var (
		he  *echo.HTTPError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &he), errors.As(err, &mbe):
		return err
	case isJSONError(err):
		return errBadRequest("invalid JSON body: %s", truncate(err.Error(), maxDecodeMessage))
	}
	return errBadRequest("the request body could not be read")
}

// isJSONError reports an error about the JSON text itself, as opposed to
// one reading the body.
func isJSONError(err error) bool {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	return errors.As(err, &syn) || errors.As(err, &typ) || err == io.EOF || err == io.ErrUnexpectedEOF ||
		strings.HasPrefix(err.Error(), "json: ") // unknown field, and the like: encoding/json has no type for them
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
