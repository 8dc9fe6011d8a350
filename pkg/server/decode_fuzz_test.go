package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/vmdhq/vmd/pkg/api"
)

// decodeTargets are the request bodies the API decodes.
var decodeTargets = []func() any{
	func() any { return new(api.SignupRequest) },
	func() any { return new(api.VerifyRequest) },
	func() any { return new(api.LoginRequest) },
	func() any { return new(api.ChangePasswordRequest) },
	func() any { return new(api.CreateVMRequest) },
	func() any { return new(api.SetQuotaRequest) },
}

// FuzzDecode checks decode against encoding/json itself: it accepts exactly
// the bodies that are one JSON value strictly decodable into the type, with
// the same result, and refuses the rest with a 400 whose message is short
// and valid UTF-8. Its seeds (testdata/fuzz/FuzzDecode) run with every
// go test; go test -fuzz=FuzzDecode ./pkg/server explores further.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"name":"web","template":"tiny","cpu":2,"memory_mb":512,"disk_gb":1,"userdata":"#cloud-config"}`,
		`{"email":"a@b.co","password":"correct horse battery","client":"cli"}`,
		`{"vms":1,"cpus":2,"memory_mb":256,"disk_gb":1}`,
		`{"name":"web"}}`, `{"name":"web"} x`, `{}{}`, `[]`, `null`, ``, `{"cpu":1e999}`, `{"admin":true}`,
		"{\"name\":\"\xff\"}", `{"name":"web","name":"db"}`, ` {"token":"abc"} `,
	} {
		f.Add([]byte(s))
	}
	e := echo.New()
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, target := range decodeTargets {
			got := target()
			err := decode(e.NewContext(httptest.NewRequest("POST", "/", bytes.NewReader(body)), httptest.NewRecorder()), got)

			want := target()
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			wantOK := json.Valid(body) && dec.Decode(want) == nil
			if (err == nil) != wantOK {
				t.Fatalf("decode(%T, %q) = %v, encoding/json says ok=%v", got, body, err, wantOK)
			}
			if err == nil {
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("decode(%q) = %+v, encoding/json %+v", body, got, want)
				}
				continue
			}
			var se *api.StatusError
			if !errors.As(err, &se) || se.Status != 400 || se.Code != api.CodeBadRequest {
				t.Fatalf("decode(%q) = %#v, want a 400 bad_request", body, err)
			}
			if len(se.Message) > maxDecodeMessage+64 || !utf8.ValidString(se.Message) {
				t.Fatalf("message %q: too long or not UTF-8", se.Message)
			}
		}
	})
}
