package account

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/sshkey"
	"github.com/vmdhq/vmd/pkg/store"
)

// keyName is what an SSH key's name may be: it is typed on command lines
// (vmctl ssh-key delete NAME) and shown in tables.
var keyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// SSHKeyToAPI returns a stored key as the API shows it.
func SSHKeyToAPI(k store.SSHKey) api.SSHKey {
	return api.SSHKey{Name: k.Name, Key: k.Key, Fingerprint: k.Fingerprint, CreatedAt: k.CreatedAt}
}

// AddSSHKey validates and stores one of u's SSH public keys.
func (s *Service) AddSSHKey(ctx context.Context, u store.User, r api.SSHKeyRequest) (api.SSHKey, error) {
	k, err := sshkey.Parse(r.Key)
	if err != nil {
		return api.SSHKey{}, &FieldError{"key", err.Error()}
	}
	name := r.Name
	if name == "" {
		name = defaultKeyName(k)
	}
	if !keyName.MatchString(name) {
		return api.SSHKey{}, &FieldError{"name", "must be 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"}
	}
	row := store.SSHKey{UserID: u.ID, Name: name, Key: k.Line(), Fingerprint: k.Fingerprint, CreatedAt: s.c.Now().UTC()}
	switch err := s.c.Store.AddSSHKey(ctx, row, api.MaxSSHKeysPerUser); {
	case errors.Is(err, store.ErrSSHKeyNameTaken):
		return api.SSHKey{}, &api.StatusError{Status: http.StatusConflict, Code: api.CodeConflict,
			Message: fmt.Sprintf("you have an ssh key named %q already", name)}
	case errors.Is(err, store.ErrSSHKeyDuplicate):
		return api.SSHKey{}, &api.StatusError{Status: http.StatusConflict, Code: api.CodeConflict,
			Message: "you have added this key already (fingerprint " + k.Fingerprint + ")"}
	case errors.Is(err, store.ErrTooManySSHKeys):
		return api.SSHKey{}, &api.StatusError{Status: http.StatusForbidden, Code: api.CodeQuotaExceeded,
			Message: fmt.Sprintf("at most %d ssh keys per user: delete one first", api.MaxSSHKeysPerUser)}
	case err != nil:
		return api.SSHKey{}, err
	}
	return SSHKeyToAPI(row), nil
}

// defaultKeyName is the key's comment when that makes a name, else
// "key-" and the start of its fingerprint.
func defaultKeyName(k sshkey.Key) string {
	if keyName.MatchString(k.Comment) {
		return k.Comment
	}
	var b strings.Builder
	for _, r := range strings.TrimPrefix(k.Fingerprint, "SHA256:") {
		if b.Len() == 10 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return "key-" + b.String()
}

// ListSSHKeys lists u's SSH keys, oldest first.
func (s *Service) ListSSHKeys(ctx context.Context, u store.User) ([]api.SSHKey, error) {
	ks, err := s.c.Store.ListSSHKeys(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	out := make([]api.SSHKey, 0, len(ks))
	for _, k := range ks {
		out = append(out, SSHKeyToAPI(k))
	}
	return out, nil
}

// DeleteSSHKey removes u's key of that name. VMs created with it keep it:
// their keys were fixed at create time.
func (s *Service) DeleteSSHKey(ctx context.Context, u store.User, name string) error {
	if err := s.c.Store.DeleteSSHKey(ctx, u.ID, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return &api.StatusError{Status: http.StatusNotFound, Code: api.CodeNotFound,
				Message: fmt.Sprintf("no ssh key named %q", name)}
		}
		return err
	}
	return nil
}
