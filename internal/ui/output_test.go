package ui

import (
	"bytes"
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
