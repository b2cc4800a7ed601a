package spk

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Values are variable values by name.
type Values map[string]string

// maxDepth bounds nested expansion: %A% naming %B% naming ... a cycle
// would otherwise never end.
const maxDepth = 16

func isNameByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

// scanRefs calls fn for every %NAME% in s whose name is made of name
// characters; "%%" is a literal percent sign. fn says whether it took the
// reference: then scanning goes on after it; otherwise from the next
// character, which is how nested references such as %DIR_%SITE%% are
// found innermost first (the inner %SITE% is taken, %DIR_% is not).
func scanRefs(s string, fn func(start, end int, name string) bool) {
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			i++
			continue
		}
		j := i + 1
		for j < len(s) && isNameByte(s[j]) {
			j++
		}
		if j < len(s) && s[j] == '%' && j > i+1 && fn(i, j+1, s[i+1:j]) {
			i = j
		}
	}
}

// checkRefs reports a reference to an undeclared variable. A name that is
// followed directly by more name characters opens a nested reference
// (%DIR_%SITE%%) and is checked when the values are known.
func checkRefs(s string, declared map[string]bool) error {
	var err error
	scanRefs(s, func(start, end int, name string) bool {
		if declared[name] {
			return true
		}
		if end < len(s) && isNameByte(s[end]) {
			return false
		}
		if err == nil {
			err = fmt.Errorf("%%%s%% is not a declared variable", name)
		}
		return false
	})
	return err
}

// Expand replaces every %NAME% with its value, repeatedly, so values may
// refer to other variables and names may be built from them
// (%DEST_%SITE%%). "%%" is a literal '%'. An unknown name or a cycle is an
// error.
func (v Values) Expand(s string) (string, error) {
	for depth := 0; depth < maxDepth; depth++ {
		changed := false
		var b strings.Builder
		last := 0
		var missing string
		scanRefs(s, func(start, end int, name string) bool {
			val, ok := v[name]
			if !ok {
				missing = name
				return false
			}
			b.WriteString(s[last:start])
			b.WriteString(val)
			last, changed = end, true
			return true
		})
		if !changed {
			if missing != "" {
				return "", fmt.Errorf("variable %s has no value", missing)
			}
			return strings.ReplaceAll(s, "%%", "%"), nil
		}
		b.WriteString(s[last:])
		s = b.String()
	}
	return "", fmt.Errorf("variables nest more than %d deep (a cycle?)", maxDepth)
}

// Resolve checks the values given against the declared variables: every
// required one has a value, defaults fill the rest, and nothing unknown
// is given. Values may themselves refer to other variables. This
// machine's built-in host variables are added.
func Resolve(p *Package, given Values) (Values, error) {
	return ResolveOn(LocalHost(), p, given)
}

// ResolveOn is Resolve with the host variables of h.
func ResolveOn(h Host, p *Package, given Values) (Values, error) {
	decl := map[string]Variable{}
	for _, vv := range p.Declared() {
		decl[vv.Name] = vv
	}
	out := Values{}
	for name, val := range given {
		if _, ok := builtinVars[name]; ok {
			return nil, fmt.Errorf("%s is a built-in host variable: it cannot be given", name)
		}
		if _, ok := decl[name]; !ok {
			return nil, fmt.Errorf("%s is not a variable of package %s (it has %s)", name, p.Name, strings.Join(sortedNames(decl), ", "))
		}
		out[name] = val
	}
	var missing []string
	for name, d := range decl {
		if _, ok := out[name]; ok {
			continue
		}
		switch {
		case d.Default != nil:
			out[name] = *d.Default
		case d.Required:
			missing = append(missing, name)
		default:
			out[name] = ""
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("package %s needs a value for %s", p.Name, strings.Join(missing, ", "))
	}
	hostVals := h.Values(p)
	for name, val := range hostVals {
		out[name] = val
	}
	// Values that refer to others are expanded once here, so that steps
	// see final values and cycles are found before anything runs.
	for name, val := range out {
		if _, host := hostVals[name]; host {
			continue // taken as they are: a host name holding % is no reference
		}
		x, err := out.Expand(val)
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", name, err)
		}
		out[name] = x
	}
	return out, nil
}

// Secrets returns the values of secret variables, and those of names
// the caller knows to be secret whatever the package says (the zone's
// secret values), longest first so that masking one never leaves part of
// another.
func Secrets(p *Package, v Values, alsoSecret ...string) []string {
	secret := map[string]bool{}
	for _, n := range alsoSecret {
		secret[n] = true
	}
	for _, d := range p.Declared() {
		if d.Secret {
			secret[d.Name] = true
		}
	}
	var out []string
	for n := range secret {
		if v[n] != "" {
			out = append(out, v[n])
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) || len(out[i]) == len(out[j]) && out[i] < out[j] })
	return out
}

// minMask is the shortest secret masked inside a line: masking a
// shorter one would reveal it (every matching character of the log
// turned into stars); a line holding it is withheld whole instead.
const minMask = 4

const withheld = "[line withheld: it may contain a secret value]"

// redact masks secret values in s (one log line or message).
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec == "" || !strings.Contains(s, sec) {
			continue
		}
		if len(sec) < minMask {
			return withheld
		}
		s = strings.ReplaceAll(s, sec, "********")
	}
	return s
}

func sortedNames(m map[string]Variable) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ParseValues reads NAME=value arguments.
func ParseValues(args []string) (Values, error) {
	out := Values{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || !isName(k) {
			return nil, fmt.Errorf("%q: want NAME=value", a)
		}
		out[k] = v
	}
	return out, nil
}

// ReadValuesFile reads NAME=value lines ('#' comments, blank lines). A
// file holding a value for a secret variable must not be readable by
// others (0600): the reference's warning about passwords in response
// files, made a rule.
func ReadValuesFile(path string, p *Package) (Values, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := Values{}
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || !isName(k) {
			return nil, fmt.Errorf("%s:%d: want NAME=value", path, n+1)
		}
		out[k] = v
	}
	if p != nil {
		secret := map[string]bool{}
		for _, d := range p.Declared() {
			secret[d.Name] = d.Secret
		}
		for k := range out {
			if secret[k] {
				fi, err := os.Stat(path)
				if err != nil {
					return nil, err
				}
				if fi.Mode().Perm()&0o077 != 0 {
					return nil, fmt.Errorf("%s holds the secret %s but is readable by others (mode %04o): chmod 600 %s", path, k, fi.Mode().Perm(), path)
				}
				break
			}
		}
	}
	return out, nil
}

// ParseSize reads sizes such as 512MiB, 2GiB, 100MB, 4096.
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	mult := uint64(1)
	for _, u := range []struct {
		suffix string
		m      uint64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.m
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a number with KiB, MiB, GiB (or KB, MB, GB)", s)
	}
	return uint64(n * float64(mult)), nil
}

func parseMode(s string) (os.FileMode, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o7777 {
		return 0, fmt.Errorf("mode %q: want octal such as 0644", s)
	}
	return os.FileMode(n), nil
}

// parseConstraint reads "OP VERSION" with OP one of >=, <=, >, <, =, !=
// ("=" when no operator is given).
func parseConstraint(s string) (op, version string, err error) {
	s = strings.TrimSpace(s)
	for _, o := range []string{">=", "<=", "!=", ">", "<", "="} {
		if strings.HasPrefix(s, o) {
			op, version = o, strings.TrimSpace(s[len(o):])
			break
		}
	}
	if op == "" {
		op, version = "=", s
	}
	if version == "" || strings.ContainsAny(version, " \t") {
		return "", "", fmt.Errorf("version constraint %q: want such as \">= 3.0\"", s)
	}
	return op, version, nil
}

// compareVersions orders dotted versions numerically where both parts are
// numbers and lexically otherwise ("3.0.11" > "3.0.2", "1.2a" > "1.2").
func compareVersions(a, b string) int {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' || r == '+' || r == '~' || r == ':' })
	}
	pa, pb := split(a), split(b)
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y string
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		nx, ex := strconv.Atoi(x)
		ny, ey := strconv.Atoi(y)
		switch {
		case ex == nil && ey == nil:
			if nx != ny {
				if nx < ny {
					return -1
				}
				return 1
			}
		case x != y:
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

func satisfies(have, constraint string) (bool, error) {
	op, want, err := parseConstraint(constraint)
	if err != nil {
		return false, err
	}
	c := compareVersions(have, want)
	switch op {
	case ">=":
		return c >= 0, nil
	case "<=":
		return c <= 0, nil
	case ">":
		return c > 0, nil
	case "<":
		return c < 0, nil
	case "!=":
		return c != 0, nil
	}
	return c == 0, nil
}
