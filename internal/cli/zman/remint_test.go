package zman

import (
	"testing"
	"time"
)

func TestParseActivation(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	good := map[string]time.Time{
		"now":                  now,
		"+36h":                 now.Add(36 * time.Hour),
		"+7d":                  now.AddDate(0, 0, 7),
		"2027-01-10T06:00:00Z": time.Date(2027, 1, 10, 6, 0, 0, 0, time.UTC),
		"2027-01-10 06:00":     time.Date(2027, 1, 10, 6, 0, 0, 0, time.Local),
		"2027-01-10":           time.Date(2027, 1, 10, 0, 0, 0, 0, time.Local),
		"":                     {},
	}
	for in, want := range good {
		got, err := ParseActivation(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"tomorrow", "+-3h", "+xd", "2027-13-01", "+-1d"} {
		if _, err := ParseActivation(in, now); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
