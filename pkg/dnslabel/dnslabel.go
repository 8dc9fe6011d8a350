// Package dnslabel is the one rule for names that must be DNS labels (RFC
// 1123): VM and template names. The server, the image catalog and the TUI's
// form all ask here, so the rule cannot drift between them. It imports
// nothing of ours, so clients can use it too.
package dnslabel

import "regexp"

// Rule says the rule in words, for error messages.
const Rule = "must be a DNS label: 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit"

var label = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Valid reports whether s is a DNS label: 1 to 63 of a-z, 0-9 and '-',
// starting and ending with a letter or digit.
func Valid(s string) bool { return label.MatchString(s) }
