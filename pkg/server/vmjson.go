package server

import (
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/api"
)

// The VM answers (get and list, the API's busiest reads) are encoded by
// hand: encoding/json's reflection and its check of every time's
// MarshalJSON output were a fifth of a list request's CPU. The output is
// byte for byte what echo's c.JSON writes (encoding/json with HTML
// escaping, then a newline); TestVMJSONMatchesEncodingJSON holds it to that.

var vmJSONBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledVMJSON: larger buffers are left to the GC, so one huge list
// does not pin its buffer.
const maxPooledVMJSON = 64 << 10

// writeVMJSON answers with vms (a single api.VM or a []api.VM) as c.JSON
// would; ?pretty, debug mode and what the hand encoder cannot write (a
// time outside years 0-9999) go to c.JSON itself.
func writeVMJSON[T api.VM | []api.VM](c echo.Context, code int, v T) error {
	if _, pretty := c.QueryParams()["pretty"]; pretty || c.Echo().Debug {
		return c.JSON(code, v)
	}
	bp := vmJSONBufs.Get().(*[]byte)
	b, err := appendVMJSON((*bp)[:0], any(v))
	if err == nil {
		err = c.Blob(code, echo.MIMEApplicationJSON, append(b, '\n'))
	} else {
		err = c.JSON(code, v)
	}
	if cap(b) <= maxPooledVMJSON {
		*bp = b[:0]
		vmJSONBufs.Put(bp)
	}
	return err
}

func appendVMJSON(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case api.VM:
		return appendVM(b, &x)
	case []api.VM:
		if x == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendVM(b, &x[i]); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	return nil, http.ErrNotSupported
}

// appendVM follows api.VM's fields and tags in order.
func appendVM(b []byte, v *api.VM) ([]byte, error) {
	var err error
	b = append(b, `{"id":`...)
	b = appendJSONString(b, v.ID)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, v.Name)
	b = append(b, `,"owner_id":`...)
	b = appendJSONString(b, v.OwnerID)
	b = append(b, `,"template":`...)
	b = appendJSONString(b, v.Template)
	b = append(b, `,"cpu":`...)
	b = strconv.AppendInt(b, int64(v.CPU), 10)
	b = append(b, `,"memory_mb":`...)
	b = strconv.AppendInt(b, int64(v.MemoryMB), 10)
	b = append(b, `,"disk_gb":`...)
	b = strconv.AppendInt(b, int64(v.DiskGB), 10)
	b = append(b, `,"state":`...)
	b = appendJSONString(b, string(v.State))
	b = append(b, `,"desired_state":`...)
	b = appendJSONString(b, string(v.DesiredState))
	if v.Node != "" {
		b = append(b, `,"node":`...)
		b = appendJSONString(b, v.Node)
	}
	if v.Message != "" {
		b = append(b, `,"message":`...)
		b = appendJSONString(b, v.Message)
	}
	b = append(b, `,"created_at":`...)
	if b, err = appendJSONTime(b, v.CreatedAt); err != nil {
		return nil, err
	}
	b = append(b, `,"updated_at":`...)
	if b, err = appendJSONTime(b, v.UpdatedAt); err != nil {
		return nil, err
	}
	if len(v.Events) > 0 {
		b = append(b, `,"events":[`...)
		for i, e := range v.Events {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"time":`...)
			if b, err = appendJSONTime(b, e.Time); err != nil {
				return nil, err
			}
			b = append(b, `,"state":`...)
			b = appendJSONString(b, string(e.State))
			if e.Message != "" {
				b = append(b, `,"message":`...)
				b = appendJSONString(b, e.Message)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if v.ExpiresAt != nil {
		b = append(b, `,"expires_at":`...)
		if b, err = appendJSONTime(b, *v.ExpiresAt); err != nil {
			return nil, err
		}
	}
	if v.IdleStop != "" {
		b = append(b, `,"idle_stop":`...)
		b = appendJSONString(b, v.IdleStop)
	}
	b = append(b, `,"ready":`...)
	b = strconv.AppendBool(b, v.Ready)
	b = append(b, `,"addresses":`...)
	b = appendJSONStrings(b, v.Addresses)
	if len(v.Snapshots) > 0 {
		b = append(b, `,"snapshots":[`...)
		for i, s := range v.Snapshots {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendJSONString(b, s.Name)
			b = append(b, `,"consistency":`...)
			b = appendJSONString(b, s.Consistency)
			b = append(b, `,"memory":`...)
			b = strconv.AppendBool(b, s.Memory)
			b = append(b, `,"size_gb":`...)
			b = strconv.AppendInt(b, int64(s.SizeGB), 10)
			b = append(b, `,"created_at":`...)
			if b, err = appendJSONTime(b, s.CreatedAt); err != nil {
				return nil, err
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"ssh_host_keys":`...)
	b = appendJSONStrings(b, v.SSHHostKeys)
	b = append(b, `,"network":`...)
	b = appendJSONString(b, v.Network)
	return append(b, '}'), nil
}

func appendJSONStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendJSONTime writes t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds, quoted), failing where it fails.
func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	b = append(b, '"')
	b, err := t.AppendText(b)
	if err != nil {
		return nil, err
	}
	return append(b, '"'), nil
}

const jsonHex = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does with HTML escaping (its
// default): ", \ and control characters escaped, < > & as \u00XX, invalid
// UTF-8 as \ufffd, U+2028 and U+2029 as \u2028 and \u2029.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', jsonHex[c>>4], jsonHex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', jsonHex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
