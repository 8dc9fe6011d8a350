// Package api holds the wire types of vmd's HTTP API: requests, responses,
// the error body and the VM state names. It imports nothing of this module,
// so the server, pkg/client, vmctl's printers and the TUI all share one copy.
package api

import "time"

// BasePath is the prefix of every API route.
const BasePath = "/api/v1"

// Error codes carried in ErrorBody. Clients map them to exit codes.
const (
	CodeBadRequest      = "bad_request"
	CodeValidation      = "validation_failed"
	CodeUnauthenticated = "unauthenticated"
	CodeForbidden       = "forbidden"
	CodeNotFound        = "not_found"
	CodeConflict        = "conflict"
	CodeQuotaExceeded   = "quota_exceeded"
	CodeEmailUnverified = "email_unverified"
	CodeInvalidLogin    = "invalid_credentials"
	CodeCSRF            = "csrf_failed"
	CodeRateLimited     = "rate_limited"
	CodeInvalidToken    = "invalid_token"
	CodeTemplateInvalid = "template_invalid"
	CodeInsufficient    = "insufficient_storage"
	CodeInternal        = "internal_error"
	CodeUnavailable     = "unavailable"
	// CodeNoCapacity: no node of the cluster has room for the VM (503).
	CodeNoCapacity = "no_capacity"
	// CodeTooLarge: the request body is over the server's limit (413).
	CodeTooLarge = "request_too_large"
	// CodeMethodNotAllowed: the route exists, the method does not (405).
	CodeMethodNotAllowed = "method_not_allowed"
	// CodePortClosed: nothing listens on the guest port a port-forward asked for (502).
	CodePortClosed = "port_closed"
)

// StatusError is an error that already knows its HTTP status and API code.
// Its Message is shown to the caller as it is, so it must be safe for
// users: never build it from another error's text (a wrapped store or
// driver error would leak). The server's error mapper turns it into an
// ErrorBody; it is the one way a layer states a status of its own.
type StatusError struct {
	Status  int
	Code    string
	Message string
}

// Error returns the message.
func (e *StatusError) Error() string { return e.Message }

// ErrorBody is the body of every non-2xx response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong in a snake_case code and a human sentence.
type ErrorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
	// Field names the request field a validation error is about ("name",
	// "memory_mb", "new_password"), so a form can show it beside that field.
	Field string `json:"field,omitempty"`
}

// Quota is a set of resource limits, or the usage counted against them.
type Quota struct {
	VMs      int `json:"vms" yaml:"vms"`
	CPUs     int `json:"cpus" yaml:"cpus"`
	MemoryMB int `json:"memory_mb" yaml:"memory_mb"`
	DiskGB   int `json:"disk_gb" yaml:"disk_gb"`
}

// User is the account as GET /me returns it.
type User struct {
	ID        string    `json:"id" yaml:"id"`
	Email     string    `json:"email" yaml:"email"`
	Admin     bool      `json:"admin" yaml:"admin"`
	Verified  bool      `json:"verified" yaml:"verified"`
	Disabled  bool      `json:"disabled,omitempty" yaml:"disabled,omitempty"` // by an admin: cannot log in
	Quota     Quota     `json:"quota" yaml:"quota"`
	Usage     Quota     `json:"usage" yaml:"usage"`
	CreatedAt time.Time `json:"created_at" yaml:"created_at"`
}

// SignupRequest is the body of POST /auth/signup.
type SignupRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// SignupResponse is returned with 201 by POST /auth/signup. It is the same
// whether or not the address already has an account, so it carries no id.
type SignupResponse struct {
	Email   string `json:"email"`
	Message string `json:"message"`
}

// VerifyRequest is the body of POST /auth/verify.
type VerifyRequest struct {
	Token string `json:"token"`
}

// LoginRequest is the body of POST /auth/login.
type LoginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	// Client is "cli" for a long-lived bearer token (vmctl); anything else
	// opens a browser session, which also sets the session cookie.
	Client string `json:"client,omitempty"`
}

// LoginResponse carries a bearer token; the same session is also set as cookie.
type LoginResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	// CSRFToken is what a browser sends back in the X-CSRF-Token header on
	// unsafe cookie-authenticated calls. It is also set as the vmd_csrf cookie.
	CSRFToken string `json:"csrf_token,omitempty"`
}

// ChangePasswordRequest is the body of POST /auth/password.
type ChangePasswordRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

// EmailRequest is the body of POST /auth/verify/resend and POST
// /auth/password/forgot. Both answer 202 whether or not the address has an
// account, so they do not tell who has one.
type EmailRequest struct {
	Email string `json:"email"`
}

// ResetPasswordRequest is the body of POST /auth/password/reset: the token
// from the password-reset e-mail and the new password.
type ResetPasswordRequest struct {
	Token       string `json:"token"`
	NewPassword string `json:"new_password"`
}

// DeleteAccountRequest is the body of DELETE /me: the current password,
// asked again because the deletion cannot be undone.
type DeleteAccountRequest struct {
	Password string `json:"password"`
}

// StatusResponse is a short answer: a status word and a sentence for people.
type StatusResponse struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// SetQuotaRequest is the body of PUT /users/{id}/quota (admin only).
type SetQuotaRequest = Quota

// State is a VM's lifecycle state.
type State string

// VM states, as listed in the contract.
const (
	StatePending      State = "pending"
	StateProvisioning State = "provisioning"
	StateStarting     State = "starting"
	StateRunning      State = "running"
	StateStopping     State = "stopping"
	StateStopped      State = "stopped"
	StateError        State = "error"
	StateDeleting     State = "deleting"
	StateUnknown      State = "unknown"
	// StateDeleted appears only in the change feed (GET /events): the
	// record is gone, so no VM is ever returned in this state.
	StateDeleted State = "deleted"
)

// DesiredState is what the owner asked for; the reconciler makes State follow it.
type DesiredState string

// Desired states.
const (
	DesiredRunning DesiredState = "running"
	DesiredStopped DesiredState = "stopped"
	DesiredDeleted DesiredState = "deleted"
)

// CreateVMRequest is the body of POST /vms.
type CreateVMRequest struct {
	Name     string `json:"name"`
	Template string `json:"template"`
	CPU      int    `json:"cpu,omitempty"`
	MemoryMB int    `json:"memory_mb,omitempty"`
	DiskGB   int    `json:"disk_gb,omitempty"`
	UserData string `json:"userdata,omitempty"`
	// Network is NetworkNAT (the default when empty) or NetworkNone.
	Network string `json:"network,omitempty"`
}

// Network kinds of a VM.
const (
	// NetworkNAT gives the guest one NIC with DHCP, DNS and filtered outbound NAT.
	NetworkNAT = "nat"
	// NetworkNone gives the guest no NIC.
	NetworkNone = "none"
)

// VM is a virtual machine as the API returns it.
type VM struct {
	ID           string       `json:"id" yaml:"id"`
	Name         string       `json:"name" yaml:"name"`
	OwnerID      string       `json:"owner_id" yaml:"owner_id"`
	Template     string       `json:"template" yaml:"template"`
	CPU          int          `json:"cpu" yaml:"cpu"`
	MemoryMB     int          `json:"memory_mb" yaml:"memory_mb"`
	DiskGB       int          `json:"disk_gb" yaml:"disk_gb"`
	State        State        `json:"state" yaml:"state"`
	DesiredState DesiredState `json:"desired_state" yaml:"desired_state"`
	Node         string       `json:"node,omitempty" yaml:"node,omitempty"`
	Message      string       `json:"message,omitempty" yaml:"message,omitempty"`
	CreatedAt    time.Time    `json:"created_at" yaml:"created_at"`
	UpdatedAt    time.Time    `json:"updated_at" yaml:"updated_at"`
	Events       []VMEvent    `json:"events,omitempty" yaml:"events,omitempty"`
	// Network is NetworkNAT or NetworkNone.
	Network string `json:"network" yaml:"network"`
	// Addresses are the guest's IP addresses with prefix length
	// ("192.168.127.2/24"), from its DHCP lease; [] before known.
	Addresses []string `json:"addresses" yaml:"addresses"`
}

// VMEvent records one state change of a VM.
type VMEvent struct {
	Time    time.Time `json:"time" yaml:"time"`
	State   State     `json:"state" yaml:"state"`
	Message string    `json:"message,omitempty" yaml:"message,omitempty"`
}

// Change is one entry of the change feed, GET /events: a VM's state or
// desired state as it was after a change. IDs grow monotonically, so a
// client resumes after the last ID it saw. Entries outlive the VM; the last
// one of a deleted VM has State StateDeleted.
type Change struct {
	ID           int64        `json:"id" yaml:"id"`
	VMID         string       `json:"vm_id" yaml:"vm_id"`
	VMName       string       `json:"vm_name" yaml:"vm_name"`
	State        State        `json:"state" yaml:"state"`
	DesiredState DesiredState `json:"desired_state" yaml:"desired_state"`
	Message      string       `json:"message" yaml:"message"`
	Time         time.Time    `json:"time" yaml:"time"`
}

// EventTypeVM is the SSE event name of a Change on GET /events.
const EventTypeVM = "vm"

// Template is a base image VMs are created from.
type Template struct {
	Name      string    `json:"name" yaml:"name"`
	SizeBytes int64     `json:"size_bytes" yaml:"size_bytes"`
	SHA256    string    `json:"sha256" yaml:"sha256"`
	CreatedAt time.Time `json:"created_at" yaml:"created_at"`
}

// ConsoleResponse is the body of GET /vms/{id}/console.
type ConsoleResponse struct {
	URL       string    `json:"url"`
	WSURL     string    `json:"ws_url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// PortForwardResponse is the body of POST /vms/{id}/portforward?port=N: a
// one-time link for a browser (cookie) client; a bearer client opens
// GET /vms/{id}/portforward?port=N directly.
type PortForwardResponse struct {
	WSURL     string    `json:"ws_url"`
	Port      int       `json:"port"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Version is the body of GET /version.
type Version struct {
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
}

// Limits on VM sizes, checked by the server and echoed in its error messages.
const (
	MaxCPU      = 64
	MaxMemoryMB = 256 * 1024
	MaxDiskGB   = 2048
	MinMemoryMB = 64
)

// Defaults used when a create request leaves a size out.
const (
	DefaultCPU      = 1
	DefaultMemoryMB = 256
	DefaultDiskGB   = 1
)
