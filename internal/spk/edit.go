package spk

import (
	"bytes"
	"fmt"
	"strings"
)

// applyEdit performs one (already expanded) edit on a file's text and
// says what it did. An edit whose anchor is not found is an error: a
// silent no-op would leave a half-configured machine.
func applyEdit(text []byte, e Edit) ([]byte, string, error) {
	nl := "\n"
	if bytes.Contains(text, []byte("\r\n")) {
		nl = "\r\n"
	}
	lines := func(s string) string {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.TrimSuffix(s, "\n")
		return strings.ReplaceAll(s, "\n", nl)
	}
	switch {
	case e.Replace != nil:
		n := bytes.Count(text, []byte(e.Replace.Search))
		if n == 0 {
			return nil, "", fmt.Errorf("%q is not in the file", e.Replace.Search)
		}
		return bytes.ReplaceAll(text, []byte(e.Replace.Search), []byte(e.Replace.With)), fmt.Sprintf("replaced %d occurrence(s) of %q", n, e.Replace.Search), nil
	case e.Append != nil:
		out := append([]byte(nil), text...)
		if len(out) > 0 && !bytes.HasSuffix(out, []byte("\n")) {
			out = append(out, nl...)
		}
		out = append(out, lines(*e.Append)+nl...)
		return out, "appended text", nil
	case e.Prepend != nil:
		return append([]byte(lines(*e.Prepend)+nl), text...), "prepended text", nil
	case e.InsertBefore != nil || e.InsertAfter != nil:
		ins, after := e.InsertBefore, false
		if e.InsertAfter != nil {
			ins, after = e.InsertAfter, true
		}
		src := strings.Split(string(text), nl)
		var out []string
		n := 0
		for i, l := range src {
			last := i == len(src)-1 && l == ""
			match := !last && strings.Contains(l, ins.Match)
			if match && !after {
				out = append(out, lines(ins.Lines))
				n++
			}
			out = append(out, l)
			if match && after {
				out = append(out, lines(ins.Lines))
				n++
			}
		}
		if n == 0 {
			return nil, "", fmt.Errorf("no line contains %q", ins.Match)
		}
		where := "before"
		if after {
			where = "after"
		}
		return []byte(strings.Join(out, nl)), fmt.Sprintf("inserted lines %s %d line(s) containing %q", where, n, ins.Match), nil
	case e.Set != nil:
		return setINI(text, e.Set, nl)
	}
	return nil, "", fmt.Errorf("empty edit")
}

// setINI sets key=value in section (or before any section when none is
// given), replacing the key's line if present, adding the section if not.
// Keys compare case-insensitively, as ini readers do; spacing around '='
// follows the file's existing line.
func setINI(text []byte, s *SetKey, nl string) ([]byte, string, error) {
	src := strings.Split(string(text), nl)
	if len(src) > 0 && src[len(src)-1] == "" {
		src = src[:len(src)-1]
	}
	section := ""
	inTarget := s.Section == ""
	insertAt := -1 // end of the target section
	if inTarget {
		insertAt = 0
	}
	for i, l := range src {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			section = strings.TrimSpace(t[1 : len(t)-1])
			inTarget = strings.EqualFold(section, s.Section)
			if inTarget {
				insertAt = i + 1
			}
			continue
		}
		if !inTarget {
			continue
		}
		if t != "" && !strings.HasPrefix(t, "#") && !strings.HasPrefix(t, ";") {
			insertAt = i + 1
		}
		k, _, ok := strings.Cut(l, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), s.Key) {
			sep := "="
			if strings.HasSuffix(k, " ") {
				sep = " = "
			}
			src[i] = strings.TrimSpace(k) + sep + s.Value
			return []byte(strings.Join(src, nl) + nl), fmt.Sprintf("set %s in [%s]", s.Key, s.Section), nil
		}
	}
	line := s.Key + "=" + s.Value
	if insertAt < 0 {
		if len(src) > 0 && strings.TrimSpace(src[len(src)-1]) != "" {
			src = append(src, "")
		}
		src = append(src, "["+s.Section+"]", line)
		return []byte(strings.Join(src, nl) + nl), fmt.Sprintf("added [%s] with %s", s.Section, s.Key), nil
	}
	src = append(src[:insertAt], append([]string{line}, src[insertAt:]...)...)
	return []byte(strings.Join(src, nl) + nl), fmt.Sprintf("added %s to [%s]", s.Key, s.Section), nil
}
