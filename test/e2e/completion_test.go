package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/pkg/client"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// bearerToken adds a verified user to v and logs in through pkg/client, the
// way a CI system gets the token it puts into VMCTL_TOKEN.
func bearerToken(t *testing.T, v *vmd, email string) string {
	t.Helper()
	const pw = "correct horse battery"
	if out, code := v.admin(t, pw+"\n", "user", "add", email, "--password-stdin"); code != 0 {
		t.Fatalf("vmd user add: %d %s", code, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := client.New(v.URL, "").Login(ctx, email, pw)
	if err != nil {
		t.Fatalf("login %s: %v", email, err)
	}
	return res.Token
}

// bashComplete sources the committed completions/vmctl.bash in a
// non-interactive bash, completes line as if TAB was pressed at its end,
// and returns the offered words.
func bashComplete(t *testing.T, env []string, line string) []string {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatalf("bash is needed: %v", err)
	}
	// cobra's script relies on the bash-completion package, as every
	// interactive bash with completions has it.
	const bashCompletion = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(bashCompletion); err != nil {
		t.Fatalf("bash-completion is needed (make deps): %v", err)
	}
	script := filepath.Join(repoRoot(t), "completions", "vmctl.bash")
	prog := `source ` + bashCompletion + `
source "$1"
line="$2"
read -r -a COMP_WORDS <<<"$line"
if [[ "$line" == *" " ]]; then COMP_WORDS+=(""); fi
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$line"
COMP_POINT=${#line}
COMP_TYPE=9
__start_vmctl vmctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
`
	cmd := exec.Command("bash", "--norc", "--noprofile", "-c", prog, "bash", script, line)
	cmd.Env = env
	cmd.Stdin = nil
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash completion of %q: %v\n%s", line, err, out)
	}
	var words []string
	for _, w := range strings.Split(string(out), "\n") {
		if w = strings.TrimSpace(w); w != "" {
			words = append(words, w)
		}
	}
	return words
}

// TestBashCompletion loads the generated bash completion and completes VM
// names and template names from a real vmd, the token coming from the
// environment as in a CI job.
func TestBashCompletion(t *testing.T) {
	parallel(t, 1)
	v := startVMD(t, storetest.Backends()[0])
	token := bearerToken(t, v, "complete@example.com")
	home := t.TempDir()
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"VMCTL_SERVER=" + v.URL, "VMCTL_TOKEN=" + token, "NO_COLOR=1"}
	c := &cli{t: t, server: v.URL, env: env}
	for _, name := range []string{"web", "worker", "db"} {
		c.must(0, "", "create", name, "--template", "tiny", "--memory", "128", "-o", "name")
	}

	tests := []struct {
		line string
		want []string
		not  []string
	}{
		{line: "vmctl get w", want: []string{"web", "worker"}, not: []string{"db"}},
		{line: "vmctl delete d", want: []string{"db"}, not: []string{"web"}},
		{line: "vmctl create new --template ", want: []string{"tiny"}},
		{line: "vmctl create new --template t", want: []string{"tiny"}},
		{line: "vmctl list -o ", want: []string{"json", "name", "yaml"}},
		{line: "vmctl sta", want: []string{"start"}, not: []string{"stop"}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got := bashComplete(t, env, tt.line)
			// with descriptions, cobra's bash v2 script shows "word  (desc)" only when several match
			words := map[string]bool{}
			for _, g := range got {
				words[strings.Fields(g)[0]] = true
			}
			for _, w := range tt.want {
				if !words[w] {
					t.Errorf("completing %q: %q not offered; got %q", tt.line, w, got)
				}
			}
			for _, w := range tt.not {
				if words[w] {
					t.Errorf("completing %q: %q offered; got %q", tt.line, w, got)
				}
			}
		})
	}
}
