package ui

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"

	"zonekit/internal/errkind"
)

// Format is how listings are printed.
type Format string

const (
	FormatTable Format = "table"
	FormatJSON  Format = "json"
)

// ParseFormat checks an -o value.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case FormatTable, FormatJSON:
		return Format(s), nil
	}
	return "", errkind.New(errkind.Usage, "output format %q: want table or json", s)
}

// JSON writes v indented, with a trailing newline.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// JSONArray writes items as JSON writes the slice, element by element
// through a buffer: a list of 100,000 devices is never one 40 MB buffer
// indented into another.
func JSONArray[T any](w io.Writer, items []T) error {
	if len(items) == 0 {
		return JSON(w, items)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString("[\n  ")
	for i := range items {
		if i > 0 {
			bw.WriteString(",\n  ")
		}
		b, err := json.MarshalIndent(&items[i], "  ", "  ")
		if err != nil {
			return err
		}
		bw.Write(b)
	}
	bw.WriteString("\n]\n")
	return bw.Flush()
}

// Listing writes a listing: on a terminal (tty) as Table does; otherwise,
// as gh does, one line per row with its fields separated by tabs, without
// headers, padding or rules, so that cut, awk and while-read take it as is.
func Listing(w io.Writer, tty bool, headers []string, rows [][]string) error {
	if tty {
		return Table(w, headers, rows)
	}
	bw := bufio.NewWriter(w)
	for _, r := range rows {
		for i, c := range r {
			if i > 0 {
				bw.WriteByte('\t')
			}
			// A tab or newline inside a field would split it or its row.
			bw.WriteString(strings.Map(func(r rune) rune {
				if r == '\t' || r == '\n' || r == '\r' {
					return ' '
				}
				return r
			}, c))
		}
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// Table writes rows under headers with light borders.
func Table(w io.Writer, headers []string, rows [][]string) error {
	if plainTable(headers, rows) {
		return writePlainTable(w, headers, rows)
	}
	return tableWriter(w, headers, rows)
}

// tableWriter renders with tablewriter: the reference for every table.
func tableWriter(w io.Writer, headers []string, rows [][]string) error {
	t := tablewriter.NewTable(w,
		tablewriter.WithRenderer(renderer.NewBlueprint(tw.Rendition{
			Borders: tw.BorderNone,
			Symbols: tw.NewSymbols(tw.StyleASCII),
			Settings: tw.Settings{
				Separators: tw.Separators{BetweenRows: tw.Off, BetweenColumns: tw.Off},
				Lines:      tw.Lines{ShowHeaderLine: tw.On},
			},
		})),
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithHeaderAlignment(tw.AlignLeft),
		tablewriter.WithRowAlignment(tw.AlignLeft),
		tablewriter.WithRowAutoWrap(tw.WrapNone),
	)
	t.Header(toAny(headers)...)
	for _, r := range rows {
		if err := t.Append(toAny(r)...); err != nil {
			return err
		}
	}
	return t.Render()
}

// plainTable reports whether writePlainTable renders the table as
// tablewriter does: every cell printable ASCII (one column per byte, no
// line breaks), every row as wide as the headers. tablewriter spends
// seconds on 100,000 rows (a device list on a terminal).
func plainTable(headers []string, rows [][]string) bool {
	if len(headers) == 0 || len(rows) == 0 {
		return false
	}
	plain := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] > 0x7e {
				return false
			}
		}
		return true
	}
	for _, h := range headers {
		if h == "" || !plain(h) || strings.TrimSpace(h) != h {
			return false
		}
	}
	for _, r := range rows {
		if len(r) != len(headers) {
			return false
		}
		for _, c := range r {
			if !plain(c) || strings.TrimSpace(c) != c {
				return false
			}
		}
	}
	return true
}

// writePlainTable writes what tableWriter writes of a plainTable: each
// cell padded to its column's width with a space either side, a rule of
// dashes under the header.
func writePlainTable(w io.Writer, headers []string, rows [][]string) error {
	widths := make([]int, len(headers))
	for i, h := range headers {
		widths[i] = len(h)
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len(c))
		}
	}
	total := 0
	for _, n := range widths {
		total += n + 2
	}
	buf := make([]byte, 0, 64<<10)
	line := func(cells []string) {
		for i, c := range cells {
			buf = append(buf, ' ')
			buf = append(buf, c...)
			for range widths[i] - len(c) + 1 {
				buf = append(buf, ' ')
			}
		}
		buf = append(buf, '\n')
	}
	line(headers)
	for range total {
		buf = append(buf, '-')
	}
	buf = append(buf, '\n')
	for _, r := range rows {
		line(r)
		if len(buf) >= 60<<10 {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	_, err := w.Write(buf)
	return err
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// KeyValues prints aligned "Key: value" lines.
func KeyValues(w io.Writer, pairs [][2]string) {
	width := 0
	for _, p := range pairs {
		width = max(width, len(p[0]))
	}
	for _, p := range pairs {
		fmt.Fprintf(w, "%-*s  %s\n", width+1, p[0]+":", p[1])
	}
}

// Date formats a time for tables; the zero time is "-".
func Date(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04")
}

// LocalDate formats a time in the user's time zone, with the zone's name.
func LocalDate(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04 MST")
}
