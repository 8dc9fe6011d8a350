package dnslabel

import (
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"web", true},
		{"a", true},
		{"0", true},
		{"web-1", true},
		{"a-b-c", true},
		{strings.Repeat("a", 63), true},
		{"", false},
		{strings.Repeat("a", 64), false},
		{"-web", false},
		{"web-", false},
		{"-", false},
		{"Web", false},
		{"we_b", false},
		{"we.b", false},
		{"wéb", false},
		{"web ", false},
	} {
		if got := Valid(tc.in); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
