package humanize

import (
	"testing"
	"time"
)

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 0: "0s", 45 * time.Second: "45s", 119 * time.Second: "119s", 2 * time.Minute: "2m",
		90 * time.Minute: "90m", 2 * time.Hour: "2h", 47 * time.Hour: "47h", 48 * time.Hour: "2d",
		400 * 24 * time.Hour: "1y",
	} {
		if got := Age(d); got != want {
			t.Errorf("Age(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestExpires(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	for _, tc := range []struct {
		at   *time.Time
		want string
	}{
		{nil, ""}, {at(0), "expired"}, {at(-time.Hour), "expired"}, {at(30 * time.Second), "in 30s"},
		{at(29*time.Minute + 59*time.Second), "in 29m"}, {at(3 * time.Hour), "in 3h"},
	} {
		if got := Expires(now, tc.at); got != tc.want {
			t.Errorf("Expires(%v) = %q, want %q", tc.at, got, tc.want)
		}
	}
}
