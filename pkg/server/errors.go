package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
// (an api.CodedError: api.StatusError and every layer's typed errors); a
// sentinel gets a fixed sentence from the sentinels table, never
// err.Error(): a wrapped chain holds store or driver text. A new typed
// error implements api.CodedError and needs no change here; a new
// sentinel is a row of sentinels.
func (s *Server) mapError(err error) (int, string, string) {
	var (
		coded  api.CodedError
		he     *echo.HTTPError
		mbe    *http.MaxBytesError
		netErr net.Error
	)
	switch {
	case errors.As(err, &coded):
		return codedError(coded)
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, api.CodeTooLarge, "request body too large"
	case errors.As(err, &he):
		return echoError(he.Code)
	}
	for _, m := range sentinels {
		if errors.Is(err, m.err) {
			return m.status, m.code, m.message
		}
	}
	if errors.As(err, &netErr) {
		// A backing service (Redis, another node) cannot be reached: the request may succeed later.
		return http.StatusServiceUnavailable, api.CodeUnavailable, "a backing service is unreachable; try again shortly"
	}
	return http.StatusInternalServerError, api.CodeInternal, "internal error"
}

// codedError answers a typed error with its code's status (or its own)
// and its own text.
func codedError(e api.CodedError) (int, string, string) {
	code := e.APICode()
	status, ok := codeStatus[code]
	if s, has := e.(interface{ APIStatus() int }); has {
		status, ok = s.APIStatus(), true
	}
	if !ok {
		// A code without a status is a bug of ours, not the caller's.
		return http.StatusInternalServerError, api.CodeInternal, "internal error"
	}
	return status, code, e.Error()
}

// codeStatus is the status of each API code a typed error may name.
// Sentinels and api.StatusError state their status themselves, so a code
// may also be answered with another (unavailable is 502 for a node that
// cannot be reached).
var codeStatus = map[string]int{
	api.CodeBadRequest:       http.StatusBadRequest,
	api.CodeValidation:       http.StatusUnprocessableEntity,
	api.CodeUnauthenticated:  http.StatusUnauthorized,
	api.CodeInvalidLogin:     http.StatusUnauthorized,
	api.CodeForbidden:        http.StatusForbidden,
	api.CodeCSRF:             http.StatusForbidden,
	api.CodeEmailUnverified:  http.StatusForbidden,
	api.CodeQuotaExceeded:    http.StatusForbidden,
	api.CodeNotFound:         http.StatusNotFound,
	api.CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	api.CodeConflict:         http.StatusConflict,
	api.CodeTooLarge:         http.StatusRequestEntityTooLarge,
	api.CodeRateLimited:      http.StatusTooManyRequests,
	api.CodeInternal:         http.StatusInternalServerError,
	api.CodePortClosed:       http.StatusBadGateway,
	api.CodeUnavailable:      http.StatusServiceUnavailable,
	api.CodeNoCapacity:       http.StatusServiceUnavailable,
	api.CodeTemplateInvalid:  http.StatusServiceUnavailable,
	api.CodeAgentUnavailable: http.StatusServiceUnavailable,
	api.CodeInsufficient:     http.StatusInsufficientStorage,
}

const noSpace = "the node has no room for this VM's disk; try a smaller disk or ask an admin"

// sentinel is the answer to an error matched with errors.Is.
type sentinel struct {
	err     error
	status  int
	code    string
	message string
}

// sentinels are matched in order, so a sentinel that wraps another
// (console.ErrSessionEnded wraps ErrTokenInvalid) comes before it. Where
// the message is the sentinel's own text, that text is written for users.
var sentinels = []sentinel{
	{account.ErrInvalidCredentials, http.StatusUnauthorized, api.CodeInvalidLogin, "invalid e-mail or password"},
	{account.ErrUnverified, http.StatusForbidden, api.CodeEmailUnverified, "e-mail address not verified: open the link in the verification e-mail first"},
	{account.ErrDisabled, http.StatusForbidden, api.CodeForbidden, "this account is disabled: ask an admin"},
	{account.ErrUnauthenticated, http.StatusUnauthorized, api.CodeUnauthenticated, "not authenticated: log in first"},
	{account.ErrInvalidToken, http.StatusBadRequest, api.CodeInvalidToken, "the token is invalid, used or expired"},

	// The console's refusals (pkg/console).
	{console.ErrSessionEnded, http.StatusForbidden, api.CodeInvalidToken, console.ErrSessionEnded.Error()},
	{console.ErrTokenInvalid, http.StatusForbidden, api.CodeInvalidToken, console.ErrTokenInvalid.Error()},
	{console.ErrOrigin, http.StatusForbidden, api.CodeForbidden, console.ErrOrigin.Error()},
	{console.ErrWrongUser, http.StatusForbidden, api.CodeForbidden, "the console token belongs to another user, or a client without an Origin header sent no bearer token"},
	{console.ErrNotRunning, http.StatusConflict, api.CodeConflict, console.ErrNotRunning.Error()},
	{console.ErrTooManySessions, http.StatusTooManyRequests, api.CodeRateLimited, console.ErrTooManySessions.Error()},
	{console.ErrUnavailable, http.StatusServiceUnavailable, api.CodeUnavailable, "the vm's console cannot be reached right now; try again shortly"},
	{console.ErrNoNetwork, http.StatusConflict, api.CodeConflict, console.ErrNoNetwork.Error()},
	{console.ErrNoForward, http.StatusServiceUnavailable, api.CodeUnavailable, console.ErrNoForward.Error()},
	{console.ErrPortClosed, http.StatusBadGateway, api.CodePortClosed, console.ErrPortClosed.Error()},
	{console.ErrNoLease, http.StatusServiceUnavailable, api.CodeUnavailable, console.ErrNoLease.Error()},
	{console.ErrGuestUnreachable, http.StatusBadGateway, api.CodeUnavailable, console.ErrGuestUnreachable.Error()},
	{console.ErrNotWebSocket, http.StatusUpgradeRequired, api.CodeBadRequest, console.ErrNotWebSocket.Error()},
	{console.ErrBadHandshake, http.StatusBadRequest, api.CodeBadRequest, "unsupported websocket handshake: version 13 with a Sec-WebSocket-Key is needed"},
	{console.ErrLinkTTL, http.StatusUnprocessableEntity, api.CodeValidation, "ttl: " + console.ErrLinkTTL.Error()},

	// The template catalog (pkg/image).
	{image.ErrNotFound, http.StatusNotFound, api.CodeNotFound, "template not found"},
	{image.ErrInvalidName, http.StatusUnprocessableEntity, api.CodeValidation, image.ErrInvalidName.Error()},
	{image.ErrExists, http.StatusConflict, api.CodeConflict, "template already exists"},
	// A node's copy of a template is unusable until an operator replaces it; the request itself was fine.
	{image.ErrChecksumMismatch, http.StatusServiceUnavailable, api.CodeTemplateInvalid, "the template's file on this node does not match its recorded sha256; an operator must replace it"},
	{image.ErrCorrupt, http.StatusServiceUnavailable, api.CodeTemplateInvalid, "the template's file on this node is not a usable qcow2 image; an operator must replace it"},

	// The store and the VM service.
	{vm.ErrNoCapacity, http.StatusServiceUnavailable, api.CodeNoCapacity, "no node has room for this vm"},
	{store.ErrUnavailable, http.StatusServiceUnavailable, api.CodeUnavailable, "the database is unreachable; try again shortly"},
	{store.ErrNotFound, http.StatusNotFound, api.CodeNotFound, "not found"},
	{store.ErrQuotaExceeded, http.StatusForbidden, api.CodeQuotaExceeded, "quota exceeded: delete a VM or ask an admin for a larger quota"},
	{store.ErrConflict, http.StatusConflict, api.CodeConflict, "that conflicts with an existing object (a name already taken?)"},
	{vm.ErrAgentUnavailable, http.StatusServiceUnavailable, api.CodeAgentUnavailable, "the guest agent is not answering: the guest has none, it is still booting, or it is stuck"},
	{vm.ErrNotRunning, http.StatusConflict, api.CodeConflict, "the vm is not running: start it first"},
	{vm.ErrTooManyGuestOps, http.StatusTooManyRequests, api.CodeRateLimited, "too many guest agent operations at once: wait for one to end"},
	{vm.ErrUnsupported, http.StatusNotImplemented, api.CodeUnavailable, "this node's driver cannot do that (a screenshot, say)"},
	{vm.ErrTooManyStreams, http.StatusTooManyRequests, api.CodeRateLimited, "too many open event streams: close one first"},
	{vm.ErrForbidden, http.StatusForbidden, api.CodeForbidden, "forbidden: this needs an admin"},
	{vm.ErrNoSpace, http.StatusInsufficientStorage, api.CodeInsufficient, noSpace},
	{syscall.ENOSPC, http.StatusInsufficientStorage, api.CodeInsufficient, noSpace},
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

// netHTTPErrorCode gives net/http's own refusals, answered before routing
// (listener.go), a code and a fixed sentence.
func netHTTPErrorCode(status int) (string, string) {
	switch status {
	case http.StatusRequestHeaderFieldsTooLarge:
		return api.CodeTooLarge, "request headers too large"
	case http.StatusNotImplemented:
		return api.CodeBadRequest, "unsupported transfer encoding"
	case http.StatusBadRequest:
		return api.CodeBadRequest, "malformed HTTP request: check the request line and headers (a bad %-escape in the path?)"
	}
	return api.CodeBadRequest, "malformed HTTP request"
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
	var coded api.CodedError
	if errors.As(err, &coded) {
		if f, ok := coded.(interface{ APIField() string }); ok {
			return f.APIField()
		}
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
