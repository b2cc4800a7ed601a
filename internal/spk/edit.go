package spk

import (
	"bytes"
	"fmt"
	"strings"
)

// applyEdit performs one (already expanded) edit on a file's text and
// says what it did. Edits are idempotent: text already appended, lines
// already inserted, a key already set and a replacement already made
// leave the text as it is (the caller reports the step ok). An edit
// whose anchor is not found, and not already applied, is an error: a
// silent no-op would leave a half-configured machine.
func applyEdit(text []byte, e Edit) ([]byte, string, error) {
	// CRLF when every line ends so; a file with a bare LF anywhere is LF.
	nl := "\n"
	if crlf := bytes.Count(text, []byte("\r\n")); crlf > 0 && crlf == bytes.Count(text, []byte("\n")) {
		nl = "\r\n"
	}
	lines := func(s string) string {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.TrimSuffix(s, "\n")
		return strings.ReplaceAll(s, "\n", nl)
	}
	// hasBlock: the block is already in the text as whole lines (line
	// endings compared loosely: a file with mixed endings still matches).
	hasBlock := func(block string) bool {
		t := "\n" + strings.ReplaceAll(string(text), "\r\n", "\n")
		if !strings.HasSuffix(t, "\n") {
			t += "\n"
		}
		return strings.Contains(t, "\n"+strings.ReplaceAll(block, "\r\n", "\n")+"\n")
	}
	switch {
	case e.Replace != nil:
		search, with := []byte(e.Replace.Search), []byte(e.Replace.With)
		if len(with) > 0 && bytes.Contains(with, search) {
			// The replacement holds the search text: occurrences inside
			// replacements already made are not replaced again.
			parts := bytes.Split(text, with)
			n := 0
			for i, p := range parts {
				n += bytes.Count(p, search)
				parts[i] = bytes.ReplaceAll(p, search, with)
			}
			if n == 0 {
				return text, fmt.Sprintf("%q is already replaced", e.Replace.Search), nil
			}
			return bytes.Join(parts, with), fmt.Sprintf("replaced %d occurrence(s) of %q", n, e.Replace.Search), nil
		}
		n := bytes.Count(text, search)
		if n == 0 {
			if len(with) == 0 || bytes.Contains(text, with) {
				return text, fmt.Sprintf("%q is already replaced", e.Replace.Search), nil
			}
			return nil, "", fmt.Errorf("%q is not in the file (nor its replacement)", e.Replace.Search)
		}
		return bytes.ReplaceAll(text, search, with), fmt.Sprintf("replaced %d occurrence(s) of %q", n, e.Replace.Search), nil
	case e.Append != nil:
		block := lines(*e.Append)
		if hasBlock(block) {
			return text, "the text is already there", nil
		}
		out := append([]byte(nil), text...)
		if len(out) > 0 && !bytes.HasSuffix(out, []byte("\n")) {
			out = append(out, nl...)
		}
		out = append(out, block+nl...)
		return out, "appended text", nil
	case e.Prepend != nil:
		block := lines(*e.Prepend)
		if hasBlock(block) {
			return text, "the text is already there", nil
		}
		return append([]byte(block+nl), text...), "prepended text", nil
	case e.InsertBefore != nil || e.InsertAfter != nil:
		ins, after := e.InsertBefore, false
		if e.InsertAfter != nil {
			ins, after = e.InsertAfter, true
		}
		block := strings.Split(lines(ins.Lines), nl)
		src := strings.Split(string(text), nl)
		equalAt := func(ls []string, at int) bool {
			if at < 0 || at+len(block) > len(ls) {
				return false
			}
			for k, b := range block {
				if ls[at+k] != b {
					return false
				}
			}
			return true
		}
		// Lines of a block already in place next to its match are not
		// matches themselves (the block may contain the match text).
		covered := map[int]bool{}
		isMatch := func(i int) bool {
			return !(i == len(src)-1 && src[i] == "") && strings.Contains(src[i], ins.Match)
		}
		if after {
			for i := range src {
				if !covered[i] && isMatch(i) && equalAt(src, i+1) {
					for k := range block {
						covered[i+1+k] = true
					}
				}
			}
		} else {
			for i := len(src) - 1; i >= 0; i-- {
				if !covered[i] && isMatch(i) && equalAt(src, i-len(block)) {
					for k := range block {
						covered[i-len(block)+k] = true
					}
				}
			}
		}
		var out []string
		n, already := 0, 0
		for i, l := range src {
			match := !covered[i] && isMatch(i)
			if match && !after {
				if equalAt(out, len(out)-len(block)) {
					already++
				} else {
					out = append(out, block...)
					n++
				}
			}
			out = append(out, l)
			if match && after {
				if equalAt(src, i+1) {
					already++
				} else {
					out = append(out, block...)
					n++
				}
			}
		}
		if n+already == 0 {
			return nil, "", fmt.Errorf("no line contains %q", ins.Match)
		}
		where := "before"
		if after {
			where = "after"
		}
		if n == 0 {
			return text, fmt.Sprintf("the lines are already %s every line containing %q", where, ins.Match), nil
		}
		return []byte(strings.Join(out, nl)), fmt.Sprintf("inserted lines %s %d line(s) containing %q", where, n, ins.Match), nil
	case e.Set != nil:
		return setINI(text, e.Set, nl)
	case e.RemoveLines != nil:
		src := strings.Split(string(text), nl)
		var out []string
		n := 0
		for _, l := range src {
			if strings.Contains(l, *e.RemoveLines) {
				n++
				continue
			}
			out = append(out, l)
		}
		if n == 0 {
			return text, fmt.Sprintf("no line contains %q", *e.RemoveLines), nil
		}
		return []byte(strings.Join(out, nl)), fmt.Sprintf("removed %d line(s) containing %q", n, *e.RemoveLines), nil
	case e.Unset != nil:
		return unsetINI(text, e.Unset, nl)
	}
	return nil, "", fmt.Errorf("empty edit")
}

// unsetINI removes key's lines (in section, or before any section when
// none is given); a key already absent leaves the text as it is.
func unsetINI(text []byte, u *UnsetKey, nl string) ([]byte, string, error) {
	u = &UnsetKey{Section: strings.TrimSpace(u.Section), Key: strings.TrimSpace(u.Key)}
	src := strings.Split(string(text), nl)
	inTarget := u.Section == ""
	var out []string
	n := 0
	for _, l := range src {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			inTarget = strings.EqualFold(strings.TrimSpace(t[1:len(t)-1]), u.Section)
		} else if k, _, ok := strings.Cut(l, "="); inTarget && ok && strings.EqualFold(strings.TrimSpace(k), u.Key) {
			n++
			continue
		}
		out = append(out, l)
	}
	if n == 0 {
		return text, fmt.Sprintf("%s is not set in [%s]", u.Key, u.Section), nil
	}
	return []byte(strings.Join(out, nl)), fmt.Sprintf("removed %s from [%s]", u.Key, u.Section), nil
}

// setINI sets key=value in section (or before any section when none is
// given), replacing the key's line if present, adding the section if not.
// Keys compare case-insensitively, as ini readers do; spacing around '='
// follows the file's existing line.
func setINI(text []byte, s *SetKey, nl string) ([]byte, string, error) {
	// Names compare trimmed, as they are read.
	s = &SetKey{Section: strings.TrimSpace(s.Section), Key: strings.TrimSpace(s.Key), Value: s.Value}
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
		k, v, ok := strings.Cut(l, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), s.Key) {
			if strings.TrimSpace(v) == s.Value {
				return text, fmt.Sprintf("%s is already set in [%s]", s.Key, s.Section), nil
			}
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
