package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/vmdhq/vmd/pkg/api"
)

// APIError is a non-2xx answer of the server, rebuilt from its error body
// (api.ErrorBody). When the body is not that JSON, Code is derived from the
// HTTP status and Message holds the start of the body or the status text.
type APIError struct {
	Status    int
	Code      string
	Message   string
	RequestID string
}

// Error returns the server's message and code, e.g.
// "vm not found (not_found, request req_123)".
func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.RequestID != "" {
		return fmt.Sprintf("%s (%s, request %s)", msg, e.Code, e.RequestID)
	}
	return fmt.Sprintf("%s (%s)", msg, e.Code)
}

// maxBodyInMessage bounds how much of a non-JSON error body ends up in a message.
const maxBodyInMessage = 200

func newAPIError(status int, requestID string, body []byte) *APIError {
	var eb api.ErrorBody
	if err := json.Unmarshal(body, &eb); err == nil && eb.Error.Code != "" {
		e := &APIError{Status: status, Code: eb.Error.Code, Message: eb.Error.Message, RequestID: eb.Error.RequestID}
		if e.RequestID == "" {
			e.RequestID = requestID
		}
		return e
	}
	msg := strings.TrimSpace(string(body))
	if strings.HasPrefix(msg, "<") || msg == "" {
		// an HTML error page of a proxy says nothing a terminal can show
		msg = fmt.Sprintf("server answered %d %s", status, http.StatusText(status))
	} else if len(msg) > maxBodyInMessage {
		msg = msg[:maxBodyInMessage] + "…"
	}
	return &APIError{Status: status, Code: codeForStatus(status), Message: msg, RequestID: requestID}
}

// codeForStatus guesses the error code for a body that carried none.
func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return api.CodeBadRequest
	case http.StatusUnauthorized:
		return api.CodeUnauthenticated
	case http.StatusForbidden:
		return api.CodeForbidden
	case http.StatusNotFound:
		return api.CodeNotFound
	case http.StatusConflict:
		return api.CodeConflict
	case http.StatusMethodNotAllowed:
		return api.CodeMethodNotAllowed
	case http.StatusRequestEntityTooLarge, http.StatusRequestHeaderFieldsTooLarge:
		return api.CodeTooLarge
	case http.StatusInsufficientStorage:
		return api.CodeInsufficient
	case http.StatusUnprocessableEntity:
		return api.CodeValidation
	case http.StatusTooManyRequests:
		return api.CodeRateLimited
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return api.CodeUnavailable
	}
	if status >= 500 {
		return api.CodeInternal
	}
	return api.CodeBadRequest
}

// ErrorCode returns the API error code in err's chain, or "" when err holds
// no *APIError.
func ErrorCode(err error) string {
	var e *APIError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// HasCode reports whether err holds an *APIError with one of codes.
func HasCode(err error, codes ...string) bool {
	c := ErrorCode(err)
	if c == "" {
		return false
	}
	for _, want := range codes {
		if c == want {
			return true
		}
	}
	return false
}

// IsNotFound reports whether the server said the object does not exist.
func IsNotFound(err error) bool { return HasCode(err, api.CodeNotFound) }

// IsUnauthenticated reports whether the call lacked a valid session or token,
// or the login was refused.
func IsUnauthenticated(err error) bool {
	return HasCode(err, api.CodeUnauthenticated, api.CodeInvalidLogin)
}

// IsForbidden reports whether the caller may not do this (including an
// unverified e-mail and a failed CSRF check).
func IsForbidden(err error) bool {
	return HasCode(err, api.CodeForbidden, api.CodeEmailUnverified, api.CodeCSRF)
}

// IsConflict reports whether the call clashed with existing state, such as a
// VM name already taken.
func IsConflict(err error) bool { return HasCode(err, api.CodeConflict) }

// IsQuotaExceeded reports whether the call would exceed the user's quota.
func IsQuotaExceeded(err error) bool { return HasCode(err, api.CodeQuotaExceeded) }

// IsUnavailable reports whether the server, or a service behind it (the
// database, Redis, the node running the VM), could not serve the call
// now; the same call may succeed later.
func IsUnavailable(err error) bool {
	return HasCode(err, api.CodeUnavailable, api.CodeNoCapacity)
}

// IsValidation reports whether the server rejected the request's content.
func IsValidation(err error) bool { return HasCode(err, api.CodeValidation, api.CodeBadRequest) }
