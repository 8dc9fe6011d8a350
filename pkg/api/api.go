// Package api holds the wire types of vmd's HTTP API: requests, responses,
// the error body and the VM state names. It imports nothing of this module,
// so the server, pkg/client, vmctl's printers and the TUI all share one copy.
package api

import (
	"encoding/base64"
	"time"
	"unicode/utf8"
)

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

// APICode makes a StatusError a CodedError.
func (e *StatusError) APICode() string { return e.Code }

// APIStatus is the status the error is answered with.
func (e *StatusError) APIStatus() int { return e.Status }

// CodedError is an error written for users that names its API code: the
// typed errors of the layers below the server (a quota passed, a name
// taken, a VM in the wrong state) implement it, and the server's one error
// mapper finds it with errors.As anywhere in a chain. The answer is the
// code's status (the server keeps one table of them), the code and the
// error's own Error() text, which must therefore be safe to show: names,
// states and limits, never another error's text. Two optional methods
// refine the answer:
//
//	APIStatus() int   // a status of its own instead of the code's (StatusError)
//	APIField() string // the request field the error is about (ErrorDetail.Field)
//
// A new error type needs no change to the mapper.
type CodedError interface {
	error
	APICode() string
}

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
	// StatePaused: the guest is frozen (QMP stop); its memory and screen stay.
	StatePaused State = "paused"
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
	// DesiredPaused: the guest's process stays, frozen (POST /vms/{id}/pause).
	DesiredPaused DesiredState = "paused"
)

// CreateVMRequest is the body of POST /vms.
type CreateVMRequest struct {
	Name     string `json:"name"`
	Template string `json:"template"`
	CPU      int    `json:"cpu,omitempty"`
	MemoryMB int    `json:"memory_mb,omitempty"`
	DiskGB   int    `json:"disk_gb,omitempty"`
	UserData string `json:"userdata,omitempty"`
	// TTL ("30m", a Go duration) deletes the VM that long after its
	// creation; "" takes the operator's default, if any.
	TTL string `json:"ttl,omitempty"`
	// IdleStop ("30m") stops the VM after that long without a console,
	// exec, port-forward or API action on it; "" never.
	IdleStop string `json:"idle_stop,omitempty"`
	// From, "name" or "name@snapshot", makes the VM a clone: its disk starts
	// as that VM's (stopped, or its disk as it is now) or that snapshot's.
	From string `json:"from,omitempty"`
	// SSHKeys are public keys (authorized_keys form) given to this VM on
	// top of the owner's stored keys; validated like POST /me/ssh-keys.
	SSHKeys []string `json:"ssh_keys,omitempty"`
	// Network is NetworkNAT (the default when empty) or NetworkNone.
	Network string `json:"network,omitempty"`
}

// ExtendRequest is the body of POST /vms/{id}/extend: the VM then expires
// TTL from now (not TTL later than before), as e2b's setTimeout does.
type ExtendRequest struct {
	TTL string `json:"ttl"`
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
	// ExpiresAt is when vmd deletes the VM; absent when it never expires.
	ExpiresAt *time.Time `json:"expires_at,omitempty" yaml:"expires_at,omitempty"`
	// IdleStop ("30m0s") is the idle time after which vmd stops it; absent: never.
	IdleStop string `json:"idle_stop,omitempty" yaml:"idle_stop,omitempty"`
	// Ready is true once the guest agent answers guest-ping, or, for a
	// guest without one, once its serial port printed the template's ready
	// line; false again when the guest stops or reboots.
	Ready bool `json:"ready" yaml:"ready"`
	// Addresses are the guest's IP addresses with prefix length
	// ("192.168.127.2/24"): its DHCP lease from vmd's network and what its
	// agent reports, loopback left out; [] before known.
	Addresses []string   `json:"addresses" yaml:"addresses"`
	Snapshots []Snapshot `json:"snapshots,omitempty" yaml:"snapshots,omitempty"`
	// SSHHostKeys are the SSH host keys the guest reported on its serial
	// console ("TYPE BASE64", no comment), [] until it has. The guest
	// vouches for them itself: they name it, they prove nothing else.
	SSHHostKeys []string `json:"ssh_host_keys" yaml:"ssh_host_keys"`
	// Network is NetworkNAT or NetworkNone.
	Network string `json:"network" yaml:"network"`
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
	// Ready is the VM's readiness after the change (see VM.Ready).
	Ready bool `json:"ready" yaml:"ready"`
}

// EventTypeVM is the SSE event name of a Change on GET /events.
const EventTypeVM = "vm"

// Template is a base image VMs are created from.
type Template struct {
	Name      string    `json:"name" yaml:"name"`
	SizeBytes int64     `json:"size_bytes" yaml:"size_bytes"`
	SHA256    string    `json:"sha256" yaml:"sha256"`
	CreatedAt time.Time `json:"created_at" yaml:"created_at"`
	// ReadyLine is the serial line that makes a guest of this template
	// without an agent ready; absent: the default, "vmd-tiny: booted".
	ReadyLine string `json:"ready_line,omitempty" yaml:"ready_line,omitempty"`
	// SSHUser is the template's default login user ("debian"); "" when unknown (root on the tiny image).
	SSHUser string `json:"ssh_user,omitempty" yaml:"ssh_user,omitempty"`
	// MinMemoryMB is the least memory a VM of this template is created with; 0: no minimum of its own.
	MinMemoryMB int `json:"min_memory_mb,omitempty" yaml:"min_memory_mb,omitempty"`
}

// ConsoleResponse is the body of GET /vms/{id}/console.
type ConsoleResponse struct {
	URL       string    `json:"url"`
	WSURL     string    `json:"ws_url"`
	ExpiresAt time.Time `json:"expires_at"`
	// ViewOnly: the proxy drops the session's keyboard, pointer and clipboard input.
	ViewOnly bool `json:"view_only,omitempty"`
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

// ExecRequest is the body of POST /vms/{id}/exec.
type ExecRequest struct {
	// Command is the program and its arguments; the program is absolute or
	// looked up in the guest agent's PATH. No shell is involved.
	Command []string `json:"command"`
	// Stdin is written to the command's standard input, which is then
	// closed; StdinEncoding says how it is encoded: EncodingUTF8 (or
	// empty) for text as is, EncodingBase64 for any bytes.
	Stdin         string `json:"stdin,omitempty"`
	StdinEncoding string `json:"stdin_encoding,omitempty"`
	// Timeout is a Go duration ("30s"; default 30s, at most 1h). The
	// command is killed in the guest when it runs longer.
	Timeout string `json:"timeout,omitempty"`
}

// ExecResponse is how a command run by POST /vms/{id}/exec ended.
type ExecResponse struct {
	// ExitCode is the command's exit status: 128+N when signal N ended it,
	// 127 when the program was not found, ExitTimedOut when it was killed
	// for its timeout.
	ExitCode int `json:"exit_code"`
	Signal   int `json:"signal,omitempty"`
	// Stdout and Stderr are the captured output, as text when it is valid
	// UTF-8 (the encoding field then absent), else standard base64 with
	// the encoding field set to EncodingBase64.
	Stdout         string `json:"stdout"`
	Stderr         string `json:"stderr"`
	StdoutEncoding string `json:"stdout_encoding,omitempty"`
	StderrEncoding string `json:"stderr_encoding,omitempty"`
	// Truncated says output was cut off at the server's cap (see Message).
	Truncated bool `json:"truncated,omitempty"`
	// TimedOut says the command was killed for its timeout.
	TimedOut bool `json:"timed_out,omitempty"`
	// Message explains a result that is not the command's own: not found,
	// timed out, output cut off.
	Message string `json:"message,omitempty"`
}

// Encodings of ExecRequest.Stdin and ExecResponse's output.
const (
	EncodingUTF8   = "utf-8"
	EncodingBase64 = "base64"
)

// ExitTimedOut is ExecResponse.ExitCode of a command killed for its
// timeout, as timeout(1) reports it.
const ExitTimedOut = 124

// EncodeOutput encodes captured output by the rule of ExecResponse: text
// when valid UTF-8 (encoding ""), else base64 (EncodingBase64).
func EncodeOutput(b []byte) (s, encoding string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return base64.StdEncoding.EncodeToString(b), EncodingBase64
}

// DecodeOutput reverses EncodeOutput.
func DecodeOutput(s, encoding string) ([]byte, error) {
	if encoding == EncodingBase64 {
		return DecodeBase64(s)
	}
	return []byte(s), nil
}

// DecodeBase64 reads standard base64, padded.
func DecodeBase64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

// CodeAgentUnavailable: the guest has no agent, or it does not answer (503).
const CodeAgentUnavailable = "agent_unavailable"

// FileResponse is the answer of PUT /vms/{id}/files: the guest file written.
type FileResponse struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// Snapshot is one snapshot of a VM, as GET /vms/{id}/snapshots lists it.
type Snapshot struct {
	Name string `json:"name" yaml:"name"`
	// Consistency says what the disk holds: "stopped" (taken while the VM
	// was off), "frozen" (running, file systems frozen by the guest agent),
	// "crash" (running, as after a power cut) or "memory" (running, with
	// its memory and device state: restore resumes there).
	Consistency string `json:"consistency" yaml:"consistency"`
	Memory      bool   `json:"memory" yaml:"memory"`
	// SizeGB is what the snapshot counts against the owner's disk quota.
	SizeGB    int       `json:"size_gb" yaml:"size_gb"`
	CreatedAt time.Time `json:"created_at" yaml:"created_at"`
}

// CreateSnapshotRequest is the body of POST /vms/{id}/snapshots.
type CreateSnapshotRequest struct {
	Name string `json:"name"`
	// Memory saves the running VM's memory and device state too.
	Memory bool `json:"memory,omitempty"`
	// Keep, if set, is how many snapshots the VM keeps from now on (0: no
	// limit); the oldest beyond it are deleted after this one is taken.
	Keep *int `json:"keep,omitempty"`
}

// Snapshot consistencies.
const (
	ConsistencyStopped = "stopped"
	ConsistencyFrozen  = "frozen"
	ConsistencyCrash   = "crash"
	ConsistencyMemory  = "memory"
)

// SSHKeyRequest is the body of POST /me/ssh-keys: one public key in
// authorized_keys form, without options. Name defaults to the key's
// comment, else to the start of its fingerprint.
type SSHKeyRequest struct {
	Name string `json:"name,omitempty"`
	Key  string `json:"key"`
}

// SSHKey is one of the caller's SSH public keys.
type SSHKey struct {
	Name string `json:"name" yaml:"name"`
	// Key is the key as vmd re-wrote it: "TYPE BASE64 [COMMENT]".
	Key         string    `json:"key" yaml:"key"`
	Fingerprint string    `json:"fingerprint" yaml:"fingerprint"` // "SHA256:…", as ssh-keygen -l prints it
	CreatedAt   time.Time `json:"created_at" yaml:"created_at"`
}

// Limits on SSH keys, checked by the server.
const (
	MaxSSHKeysPerUser = 32 // stored keys of one user
	MaxSSHKeysPerVM   = 16 // keys in one create request's ssh_keys
)

// ConsoleSession is one open console of a VM (GET /vms/{id}/console/sessions).
type ConsoleSession struct {
	UserID   string    `json:"user_id"`
	Email    string    `json:"email"`
	ViewOnly bool      `json:"view_only"`
	Since    time.Time `json:"since"`
	// LinkID names the share link it was opened through; "" for none.
	LinkID string `json:"link_id,omitempty"`
}

// ShareLink is a revocable view-only console link of one VM. URL (with
// the link's secret) is shown once, when it is made.
type ShareLink struct {
	ID        string    `json:"id"`
	VMID      string    `json:"vm_id"`
	URL       string    `json:"url,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CreateShareLinkRequest is the body of POST /vms/{id}/console/links;
// TTL is a Go duration ("1h"), default 1h, at most 24h.
type CreateShareLinkRequest struct {
	TTL string `json:"ttl,omitempty"`
}

// ShareLinkTokenRequest is the body of POST /vms/{id}/console/link-token:
// the secret of a share link, for a view-only console token.
type ShareLinkTokenRequest struct {
	Link string `json:"link"`
}
