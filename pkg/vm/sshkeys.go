package vm

import (
	"context"
	"fmt"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/sshkey"
)

// guestKeys is the authorized-key list a new VM is given, fixed now: the
// owner's stored keys, then the request's own, each "TYPE BASE64" (no
// comment: it goes into the seed's YAML as it is), de-duplicated. The
// request's keys are checked as POST /me/ssh-keys checks a key.
func (s *Service) guestKeys(ctx context.Context, ownerID string, extra []string) ([]string, error) {
	if len(extra) > api.MaxSSHKeysPerVM {
		return nil, &ValidationError{"ssh_keys", fmt.Sprintf("at most %d keys", api.MaxSSHKeysPerVM)}
	}
	var out []string
	seen := map[string]bool{}
	add := func(k sshkey.Key) {
		if !seen[k.Authorized] {
			seen[k.Authorized] = true
			out = append(out, k.Authorized)
		}
	}
	var parsed []sshkey.Key
	for i, e := range extra {
		k, err := sshkey.Parse(e)
		if err != nil {
			return nil, &ValidationError{fmt.Sprintf("ssh_keys[%d]", i), err.Error()}
		}
		parsed = append(parsed, k)
	}
	stored, err := s.store.ListSSHKeys(ctx, ownerID)
	if err != nil {
		return nil, fmt.Errorf("list ssh keys of %s: %w", ownerID, err)
	}
	for _, st := range stored {
		// Stored keys were checked when added; parsing again re-marshals
		// them, so nothing but "TYPE BASE64" reaches a seed.
		if k, err := sshkey.Parse(st.Key); err == nil {
			add(k)
		}
	}
	for _, k := range parsed {
		add(k)
	}
	return out, nil
}

// templateMemory applies a template's minimum memory: a create that left
// memory out gets at least the minimum, one that asked for less is refused.
func templateMemory(t api.Template, asked, normalized int) (int, error) {
	if t.MinMemoryMB <= 0 || normalized >= t.MinMemoryMB {
		return normalized, nil
	}
	if asked == 0 {
		return t.MinMemoryMB, nil
	}
	return 0, &ValidationError{"memory_mb", fmt.Sprintf("template %s needs at least %d MB", t.Name, t.MinMemoryMB)}
}
