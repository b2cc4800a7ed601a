package ui

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// JSONArray writes exactly what JSON writes for the same slice.
func TestJSONArrayAsJSON(t *testing.T) {
	type item struct {
		Name   string    `json:"name"`
		When   time.Time `json:"when"`
		Tags   []string  `json:"tags"`
		Nested *item     `json:"nested,omitempty"`
	}
	for _, items := range [][]item{
		nil,
		{},
		{{Name: "a<b>&"}},
		{{Name: "x", Tags: []string{"1", "2"}}, {Name: "y", Tags: []string{}, Nested: &item{Name: "z"}}},
	} {
		var want, got bytes.Buffer
		if err := JSON(&want, items); err != nil {
			t.Fatal(err)
		}
		if err := JSONArray(&got, items); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("JSONArray:\n%s\nJSON:\n%s", got.String(), want.String())
		}
	}
}

// Piped, a listing is bare tab-separated rows; on a terminal, the table.
func TestListingPipedAndTerminal(t *testing.T) {
	headers := []string{"NAME", "SIZE"}
	rows := [][]string{{"a", "1"}, {"long name", ""}, {"tab\there", "new\nline"}}
	var piped bytes.Buffer
	if err := Listing(&piped, false, headers, rows); err != nil {
		t.Fatal(err)
	}
	if want := "a\t1\nlong name\t\ntab here\tnew line\n"; piped.String() != want {
		t.Errorf("piped:\n%q\nwant:\n%q", piped.String(), want)
	}
	var tty, table bytes.Buffer
	if err := Listing(&tty, true, headers, rows[:2]); err != nil {
		t.Fatal(err)
	}
	if err := Table(&table, headers, rows[:2]); err != nil {
		t.Fatal(err)
	}
	if tty.String() != table.String() || !strings.Contains(tty.String(), "NAME") || strings.Contains(tty.String(), "\t") {
		t.Errorf("terminal form is not the table:\n%s", tty.String())
	}
	piped.Reset()
	if err := Listing(&piped, false, headers, nil); err != nil || piped.Len() != 0 {
		t.Errorf("empty piped listing: %q, %v", piped.String(), err)
	}
}
