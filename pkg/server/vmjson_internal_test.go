package server

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"reflect"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
)

// jsonStrings are the strings the random VMs are made of: what encoding/json
// escapes (quotes, backslashes, control characters, HTML, invalid UTF-8,
// U+2028/9) beside plain text.
var jsonStrings = []string{"", "web", "vm_01HX", `say "hi"`, `C:\path`, "line\nnext\ttab\r\b\f", "\x00\x01\x1f\x7f",
	"<script>&amp;</script>", "é ☃ 😀", "\u2028\u2029", "bad \xff\xfe utf8", "\xe2\x82", "10.0.0.2/24", "ssh-ed25519 AAAA"}

var jsonTimes = []time.Time{{}, time.Date(2026, 12, 1, 14, 2, 3, 0, time.UTC),
	time.Date(2026, 12, 1, 14, 2, 3, 123456789, time.UTC), time.Date(2026, 1, 2, 3, 4, 5, 120000, time.UTC),
	time.Date(1999, 12, 31, 23, 59, 59, 1, time.FixedZone("", 5*3600+30*60)),
	time.Date(2030, 6, 1, 0, 0, 0, 0, time.FixedZone("X", -7*3600))}

// fill sets v (and all it holds) to random values from the pools above,
// walking the type by reflection, so a field added to api.VM and not to
// appendVM is noticed.
func fill(r *rand.Rand, v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(jsonStrings[r.Intn(len(jsonStrings))])
	case reflect.Int:
		v.SetInt([]int64{0, 1, -1, 4096, 1 << 40}[r.Intn(5)])
	case reflect.Bool:
		v.SetBool(r.Intn(2) == 0)
	case reflect.Pointer:
		if r.Intn(3) == 0 {
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		fill(r, v.Elem())
	case reflect.Slice:
		switch r.Intn(4) {
		case 0:
			return // nil
		case 1:
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		default:
			n := 1 + r.Intn(3)
			v.Set(reflect.MakeSlice(v.Type(), n, n))
			for i := 0; i < n; i++ {
				fill(r, v.Index(i))
			}
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(jsonTimes[r.Intn(len(jsonTimes))]))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			fill(r, v.Field(i))
		}
	default:
		panic("fill: no values for " + v.Type().String())
	}
}

// TestVMJSONMatchesEncodingJSON holds the hand encoder of the VM answers
// to what c.JSON (encoding/json) writes, byte for byte, on random VMs and lists.
func TestVMJSONMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	check := func(v any) {
		t.Helper()
		var want bytes.Buffer
		werr := json.NewEncoder(&want).Encode(v)
		got, gerr := appendVMJSON(nil, v)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("encoding/json error %v, hand encoder error %v, of %#v", werr, gerr, v)
		}
		if werr == nil && !bytes.Equal(append(got, '\n'), want.Bytes()) {
			t.Fatalf("hand encoder:\n%s\nencoding/json:\n%s", got, want.Bytes())
		}
	}
	for i := 0; i < 3000; i++ {
		var v api.VM
		fill(r, reflect.ValueOf(&v).Elem())
		check(v)
		var vs []api.VM
		fill(r, reflect.ValueOf(&vs).Elem())
		check(vs)
	}
	check([]api.VM(nil))
	check([]api.VM{})
	// A time encoding/json refuses: the hand encoder refuses it too (and
	// the handler falls back to c.JSON, which answers the same error).
	check(api.VM{CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)})
	check([]api.VM{{}, {Events: []api.VMEvent{{Time: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}}}})
}
