package ui

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

func checkTable(t *testing.T, headers []string, rows [][]string) {
	t.Helper()
	var want, got bytes.Buffer
	if err := tableWriter(&want, headers, rows); err != nil {
		t.Fatal(err)
	}
	if err := Table(&got, headers, rows); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Fatalf("headers %q rows %q:\n got %q\nwant %q", headers, rows, got.String(), want.String())
	}
}

// Table's own path writes tablewriter's bytes, and tables it does not
// take still go to tablewriter.
func TestTableMatchesTablewriter(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		const chars = "abcXYZ019-._:/,()[]{}@#%&*+=<>?!'\\"
		n := r.IntN(12)
		if r.IntN(8) == 0 {
			n = 0
		}
		var b strings.Builder
		for i := range n {
			c := chars[r.IntN(len(chars))]
			if i > 0 && i < n-1 && r.IntN(6) == 0 {
				c = ' '
			}
			b.WriteByte(c)
		}
		return b.String()
	}
	for range 300 {
		cols := 1 + r.IntN(8)
		headers := make([]string, cols)
		for i := range headers {
			headers[i] = strings.ToUpper(word())
			if headers[i] == "" {
				headers[i] = "H"
			}
		}
		rows := make([][]string, 1+r.IntN(6))
		for i := range rows {
			rows[i] = make([]string, cols)
			for j := range rows[i] {
				rows[i][j] = word()
			}
		}
		checkTable(t, headers, rows)
	}
	// The ones tablewriter keeps: wide or non-ASCII text, line breaks,
	// padding, ragged rows, no rows.
	for _, tc := range []struct {
		h []string
		r [][]string
	}{
		{[]string{"NAME", "OS"}, [][]string{{"été", "x"}}},
		{[]string{"NAME", "OS"}, [][]string{{"日本", "x"}}},
		{[]string{"NAME", "OS"}, [][]string{{"a\nb", "x"}}},
		{[]string{"NAME", "OS"}, [][]string{{" a", "x "}}},
		{[]string{"NAME", "OS"}, [][]string{{"a"}}},
		{[]string{"NAME", "OS"}, nil},
		{[]string{"name", "Last contact"}, [][]string{{"a", "b"}}},
	} {
		checkTable(t, tc.h, tc.r)
		if plainTable(tc.h, tc.r) && tc.h[0] != "name" {
			t.Errorf("%q %q taken by the plain path", tc.h, tc.r)
		}
	}
}

// BenchmarkTable100k: a device list of 100,000 rows on a terminal.
func BenchmarkTable100k(b *testing.B) {
	headers := []string{"NAME", "ID", "KIND", "OS", "ADDRESS", "REGISTERED", "LAST CONTACT", "GROUPS"}
	rows := make([][]string, 100000)
	for i := range rows {
		rows[i] = []string{fmt.Sprintf("ws-%07d.branch%02d.example.com", i, i%100), fmt.Sprintf("%032x", i), "zac", "linux", "10.80.188.121",
			"2026-11-28 03:42", "2026-12-07 08:59", ""}
	}
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			if err := Table(io.Discard, headers, rows); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tablewriter", func(b *testing.B) {
		for b.Loop() {
			if err := tableWriter(io.Discard, headers, rows); err != nil {
				b.Fatal(err)
			}
		}
	})
}
