// Package humanize prints values the way people read them in tables.
package humanize

import (
	"fmt"
	"time"
)

// Age prints a duration the way kubectl's AGE column does: 45s, 12m, 5h, 3d, 2y.
func Age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	case d < 365*24*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	default:
		return fmt.Sprintf("%dy", int(d.Hours()/24/365))
	}
}

// Expires is the countdown of a VM's expiry: "" when it never expires,
// "in 29m" before it, "expired" once past (vmd deletes it within seconds).
func Expires(now time.Time, at *time.Time) string {
	switch {
	case at == nil:
		return ""
	case !now.Before(*at):
		return "expired"
	}
	return "in " + Age(at.Sub(now))
}
