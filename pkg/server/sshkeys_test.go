package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

func pubKey(t *testing.T, comment string) (line, authorized, fingerprint string) {
	t.Helper()
	authorized = testutil.SSHPublicKey(t)
	p, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorized))
	if err != nil {
		t.Fatal(err)
	}
	line = authorized
	if comment != "" {
		line += " " + comment
	}
	return line, authorized, ssh.FingerprintSHA256(p)
}

func errorField(t *testing.T, data []byte) string {
	t.Helper()
	var eb api.ErrorBody
	_ = json.Unmarshal(data, &eb)
	return eb.Error.Field
}

// TestSSHKeysAPI: add, list, delete, the refusals (422 naming the field,
// 409, the cap), another user's keys invisible, keys gone with the account.
func TestSSHKeysAPI(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		alice, bob := e.signup("alice@example.com"), e.signup("bob@example.com")
		line, auth, fp := pubKey(t, "alice@laptop")

		var k api.SSHKey
		alice.mustDo("POST", "/me/ssh-keys", api.SSHKeyRequest{Key: line}, 201, &k)
		if k.Name != "alice@laptop" || k.Key != line || k.Fingerprint != fp || !strings.HasPrefix(fp, "SHA256:") || k.CreatedAt.IsZero() {
			t.Fatalf("added %+v, want name from comment and fingerprint %s", k, fp)
		}

		t.Run("refusals", func(t *testing.T) {
			other, _, _ := pubKey(t, "")
			cases := []struct {
				name       string
				req        api.SSHKeyRequest
				status     int
				code, fld  string
				msgContain string
			}{
				{"garbage", api.SSHKeyRequest{Key: "not a key"}, 422, api.CodeValidation, "key", "authorized_keys"},
				{"options", api.SSHKeyRequest{Key: `command="/bin/sh" ` + other}, 422, api.CodeValidation, "key", "options"},
				{"two keys", api.SSHKeyRequest{Key: other + "\n" + line}, 422, api.CodeValidation, "key", "one key"},
				{"huge", api.SSHKeyRequest{Key: other + " " + strings.Repeat("c", 9000)}, 422, api.CodeValidation, "key", "longer"},
				{"bad name", api.SSHKeyRequest{Name: "a b/c", Key: other}, 422, api.CodeValidation, "name", ""},
				{"same name", api.SSHKeyRequest{Name: "alice@laptop", Key: other}, 409, api.CodeConflict, "", "named"},
				{"same key other name", api.SSHKeyRequest{Name: "again", Key: auth}, 409, api.CodeConflict, "", fp},
			}
			for _, c := range cases {
				st, data := alice.do("POST", "/me/ssh-keys", c.req, nil)
				wantError(t, st, data, c.status, c.code)
				if got := errorField(t, data); got != c.fld {
					t.Errorf("%s: field %q, want %q", c.name, got, c.fld)
				}
				if !strings.Contains(errorMessage(t, data), c.msgContain) {
					t.Errorf("%s: message %q lacks %q", c.name, errorMessage(t, data), c.msgContain)
				}
			}
		})

		t.Run("another user's keys are invisible", func(t *testing.T) {
			var ks []api.SSHKey
			bob.mustDo("GET", "/me/ssh-keys", nil, 200, &ks)
			if len(ks) != 0 {
				t.Fatalf("bob sees %v", ks)
			}
			st, data := bob.do("DELETE", "/me/ssh-keys/alice@laptop", nil, nil)
			wantError(t, st, data, 404, api.CodeNotFound)
			// Bob may add the very same key: it is his own entry.
			bob.mustDo("POST", "/me/ssh-keys", api.SSHKeyRequest{Key: line}, 201, nil)
			alice.mustDo("GET", "/me/ssh-keys", nil, 200, &ks)
			if len(ks) != 1 || ks[0].Name != "alice@laptop" {
				t.Fatalf("alice's keys = %v", ks)
			}
		})

		t.Run("cap", func(t *testing.T) {
			carol := e.signup("carol@example.com")
			for i := range api.MaxSSHKeysPerUser {
				l, _, _ := pubKey(t, "")
				carol.mustDo("POST", "/me/ssh-keys", api.SSHKeyRequest{Name: fmt.Sprint("k", i), Key: l}, 201, nil)
			}
			l, _, _ := pubKey(t, "")
			st, data := carol.do("POST", "/me/ssh-keys", api.SSHKeyRequest{Key: l}, nil)
			wantError(t, st, data, 403, api.CodeQuotaExceeded)
		})

		t.Run("a new vm gets the owner's keys and the request's, fixed at create", func(t *testing.T) {
			extra, extraAuth, _ := pubKey(t, "ci")
			var v api.VM
			alice.mustDo("POST", "/vms", api.CreateVMRequest{Name: "keyed", Template: "tiny", SSHKeys: []string{extra, line}}, 201, &v)
			if v.SSHHostKeys == nil || len(v.SSHHostKeys) != 0 {
				t.Fatalf("ssh_host_keys of a new vm = %#v, want []", v.SSHHostKeys)
			}
			alice.mustDo("DELETE", "/me/ssh-keys/alice@laptop", nil, 204, nil)
			rec, err := e.store.GetVM(context.Background(), v.ID)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{auth, extraAuth}; !slices.Equal(rec.SSHKeys, want) {
				t.Fatalf("vm keys = %q, want %q (owner's first, de-duplicated, no comments)", rec.SSHKeys, want)
			}
			st, data := alice.do("POST", "/vms", api.CreateVMRequest{Name: "bad", Template: "tiny",
				SSHKeys: []string{extra, `from="*" ` + extra}}, nil)
			wantError(t, st, data, 422, api.CodeValidation)
			if f := errorField(t, data); f != "ssh_keys[1]" {
				t.Fatalf("field %q, want ssh_keys[1]", f)
			}
		})

		t.Run("keys go with the account", func(t *testing.T) {
			dave := e.signup("dave@example.com")
			l, _, _ := pubKey(t, "")
			dave.mustDo("POST", "/me/ssh-keys", api.SSHKeyRequest{Key: l}, 201, nil)
			var me api.User
			dave.mustDo("GET", "/me", nil, 200, &me)
			dave.mustDo("DELETE", "/me", api.DeleteAccountRequest{Password: "correct horse battery"}, 200, nil)
			ks, err := e.store.ListSSHKeys(context.Background(), me.ID)
			if err != nil || len(ks) != 0 {
				t.Fatalf("keys after account deletion: %v, %v", ks, err)
			}
		})
	})
}
