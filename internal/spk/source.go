// Package spk is the server software package: a readable source (SPK,
// YAML) that installs or patches software on a machine, its compiled,
// sealed form (CPK: logic and content in one archive with digests and an
// optional signature by the zone CA), and the processor that runs a CPK
// with a log, a dry run and a rollback.
package spk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// FormatVersion is the version of the SPK source and CPK logic format.
const FormatVersion = 1

// Package is an SPK source: its main component (variables, requirements
// and steps that apply to the whole package) and ordered subordinate
// components.
type Package struct {
	Format      int        `yaml:"spk" json:"spk"`
	Name        string     `yaml:"name" json:"name"`
	Version     string     `yaml:"version,omitempty" json:"version,omitempty"`
	Description string     `yaml:"description,omitempty" json:"description,omitempty"`
	Variables   []Variable `yaml:"variables,omitempty" json:"variables,omitempty"`
	Component   `yaml:",inline" json:",inline"`
	Components  []Component `yaml:"components,omitempty" json:"components,omitempty"`
}

// Variable is a value given when the package runs.
type Variable struct {
	Name        string  `yaml:"name" json:"name"`
	Description string  `yaml:"description,omitempty" json:"description,omitempty"`
	Default     *string `yaml:"default,omitempty" json:"default,omitempty"`
	Required    bool    `yaml:"required,omitempty" json:"required,omitempty"`
	Secret      bool    `yaml:"secret,omitempty" json:"secret,omitempty"` // never logged
}

// Component is a unit of logic: its requirements, then pre-install steps,
// file copies, text edits and post-install steps, in that order.
type Component struct {
	CompName     string        `yaml:"component,omitempty" json:"component,omitempty"`
	CompVars     []Variable    `yaml:"component_variables,omitempty" json:"component_variables,omitempty"`
	Requirements []Requirement `yaml:"requirements,omitempty" json:"requirements,omitempty"`
	PreInstall   []Action      `yaml:"pre_install,omitempty" json:"pre_install,omitempty"`
	Files        []FileStep    `yaml:"files,omitempty" json:"files,omitempty"`
	Edits        []Edit        `yaml:"edits,omitempty" json:"edits,omitempty"`
	PostInstall  []Action      `yaml:"post_install,omitempty" json:"post_install,omitempty"`
}

// Requirement is one condition; Else says what happens when it does not
// hold: "skip" the component (or the whole package, on the main
// component) or "fail" the package (the default).
type Requirement struct {
	OS      *OSReq      `yaml:"os,omitempty" json:"os,omitempty"`
	Memory  string      `yaml:"memory,omitempty" json:"memory,omitempty"`       // at least this much RAM: 512MiB, 2GiB
	Disk    *DiskReq    `yaml:"disk,omitempty" json:"disk,omitempty"`           // free space under a path
	File    *FileReq    `yaml:"file,omitempty" json:"file,omitempty"`           // a file present or absent
	Env     *ValueReq   `yaml:"env,omitempty" json:"env,omitempty"`             // an environment value
	Setting *SettingReq `yaml:"setting,omitempty" json:"setting,omitempty"`     // a key=value in a settings file
	Package *PkgReq     `yaml:"installed,omitempty" json:"installed,omitempty"` // an installed package version
	Else    string      `yaml:"else,omitempty" json:"else,omitempty"`           // skip or fail
	Message string      `yaml:"message,omitempty" json:"message,omitempty"`     // said when it does not hold
}

// OSReq names an operating system and optionally a version constraint
// on VERSION_ID of /etc/os-release (">= 12", "= 22.04").
type OSReq struct {
	Name    string `yaml:"name" json:"name"` // linux, windows, or an os-release ID such as debian
	Version string `yaml:"version,omitempty" json:"version,omitempty"`
}

// DiskReq asks for free space under Path.
type DiskReq struct {
	Path string `yaml:"path" json:"path"`
	Free string `yaml:"free" json:"free"`
}

// FileReq asks for a file to exist (or not, with Absent).
type FileReq struct {
	Path   string `yaml:"path" json:"path"`
	Absent bool   `yaml:"absent,omitempty" json:"absent,omitempty"`
}

// ValueReq asks for an environment variable to be set (to Value, if given).
type ValueReq struct {
	Name  string  `yaml:"name" json:"name"`
	Value *string `yaml:"value,omitempty" json:"value,omitempty"`
}

// SettingReq asks for a key in a key=value or ini file to have a value.
type SettingReq struct {
	File    string  `yaml:"file" json:"file"`
	Section string  `yaml:"section,omitempty" json:"section,omitempty"`
	Key     string  `yaml:"key" json:"key"`
	Value   *string `yaml:"value,omitempty" json:"value,omitempty"`
}

// PkgReq asks for an installed (dpkg or rpm) package, optionally with a
// version constraint (">= 3.0").
type PkgReq struct {
	Name    string `yaml:"name" json:"name"`
	Version string `yaml:"version,omitempty" json:"version,omitempty"`
}

// Action is a pre- or post-install step: exactly one of its kinds.
type Action struct {
	Service *ServiceAction `yaml:"service,omitempty" json:"service,omitempty"`
	Script  string         `yaml:"script,omitempty" json:"script,omitempty"` // run by /bin/sh -e
	Run     []string       `yaml:"run,omitempty" json:"run,omitempty"`       // a command and its arguments
	Dpkg    []string       `yaml:"dpkg,omitempty" json:"dpkg,omitempty"`     // dpkg with these arguments
	RPM     []string       `yaml:"rpm,omitempty" json:"rpm,omitempty"`       // rpm with these arguments
	// Undo runs if a later step fails, to reverse this one.
	Undo []string `yaml:"undo,omitempty" json:"undo,omitempty"`
	// Creates names a file the step makes: when it exists, the step's
	// work is done and it does not run again (ok, not changed).
	Creates string `yaml:"creates,omitempty" json:"creates,omitempty"`
	// Unless is a command (argv) that succeeds when the step's work is
	// already done: then the step does not run.
	Unless []string `yaml:"unless,omitempty" json:"unless,omitempty"`
	// Timeout bounds the command ("30m"); the default is the caller's
	// (the zone's execution timeout for the agent).
	Timeout string `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// Dir is the working directory ("" means the package's unpacked content).
	Dir string `yaml:"dir,omitempty" json:"dir,omitempty"`
}

// ServiceAction starts, stops or restarts a systemd unit.
type ServiceAction struct {
	Name   string `yaml:"name" json:"name"`
	Action string `yaml:"action" json:"action"` // start, stop, restart
}

// FileStep copies content from the package, or copies or moves a file on
// the machine. A file it replaces is kept for rollback.
type FileStep struct {
	FromPackage string `yaml:"from_package,omitempty" json:"from_package,omitempty"` // a file or directory in the package content
	Copy        string `yaml:"copy,omitempty" json:"copy,omitempty"`                 // a file on the machine
	Move        string `yaml:"move,omitempty" json:"move,omitempty"`                 // a file on the machine
	// Delete removes a file, symbolic link or directory tree (kept for
	// rollback); one that is already gone is ok.
	Delete string `yaml:"delete,omitempty" json:"delete,omitempty"`
	To     string `yaml:"to,omitempty" json:"to,omitempty"`
	Mode   string `yaml:"mode,omitempty" json:"mode,omitempty"` // octal, e.g. "0644"
}

// Edit changes a text file. Exactly one operation per edit.
type Edit struct {
	File         string    `yaml:"file" json:"file"`
	Replace      *Replace  `yaml:"replace,omitempty" json:"replace,omitempty"`
	Append       *string   `yaml:"append,omitempty" json:"append,omitempty"`
	Prepend      *string   `yaml:"prepend,omitempty" json:"prepend,omitempty"`
	InsertBefore *InsertAt `yaml:"insert_before,omitempty" json:"insert_before,omitempty"`
	InsertAfter  *InsertAt `yaml:"insert_after,omitempty" json:"insert_after,omitempty"`
	Set          *SetKey   `yaml:"set,omitempty" json:"set,omitempty"`
	// RemoveLines removes every line containing the text.
	RemoveLines *string `yaml:"remove_lines,omitempty" json:"remove_lines,omitempty"`
	// Unset removes a key (in a section, if given) of an ini-style file.
	Unset *UnsetKey `yaml:"unset,omitempty" json:"unset,omitempty"`
}

// UnsetKey names a key of an ini-style file to remove.
type UnsetKey struct {
	Section string `yaml:"section,omitempty" json:"section,omitempty"`
	Key     string `yaml:"key" json:"key"`
}

// Replace substitutes every occurrence of Search.
type Replace struct {
	Search string `yaml:"search" json:"search"`
	With   string `yaml:"with" json:"with"`
}

// InsertAt inserts Lines before or after every line containing Match.
type InsertAt struct {
	Match string `yaml:"match" json:"match"`
	Lines string `yaml:"lines" json:"lines"`
}

// SetKey sets Key=Value in an ini-style file, in Section if given
// (created when missing).
type SetKey struct {
	Section string `yaml:"section,omitempty" json:"section,omitempty"`
	Key     string `yaml:"key" json:"key"`
	Value   string `yaml:"value" json:"value"`
}

// maxSource bounds an SPK source file.
const maxSource = 4 << 20

// ParseSource reads an SPK source, refusing unknown fields so that a
// misspelt step is an error rather than silently nothing.
func ParseSource(r io.Reader) (*Package, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxSource+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSource {
		return nil, fmt.Errorf("SPK source larger than %d bytes", maxSource)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var p Package
	if err := dec.Decode(&p); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("SPK source is empty")
		}
		return nil, fmt.Errorf("SPK source: %w", err)
	}
	if err := p.Check(); err != nil {
		return nil, err
	}
	return &p, nil
}

// ReadSourceFile parses the SPK source at path.
func ReadSourceFile(path string) (*Package, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := ParseSource(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// isName reports whether s is a variable name: a letter or underscore,
// then letters, digits and underscores (ASCII).
func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' && (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// StepError names where in a package something is wrong.
type StepError struct {
	Component string
	Step      string
	Err       error
}

func (e *StepError) Error() string {
	where := "component " + e.Component
	if e.Step != "" {
		where += ", " + e.Step
	}
	return where + ": " + e.Err.Error()
}

func (e *StepError) Unwrap() error { return e.Err }

func stepErr(comp, step string, format string, a ...any) error {
	return &StepError{Component: comp, Step: step, Err: fmt.Errorf(format, a...)}
}

// All returns the main component then the subordinate ones, each named.
func (p *Package) All() []*Component {
	main := p.Component
	if main.CompName == "" {
		main.CompName = "main"
	}
	out := []*Component{&main}
	for i := range p.Components {
		c := &p.Components[i]
		out = append(out, c)
	}
	return out
}

// Declared returns every variable the package declares: the package's,
// then each component's.
func (p *Package) Declared() []Variable {
	out := append([]Variable(nil), p.Variables...)
	for _, c := range p.All() {
		out = append(out, c.CompVars...)
	}
	return out
}

// Check validates the structure: names, exactly one kind per step, and
// that every %VAR% refers to a declared variable.
func (p *Package) Check() error {
	if p.Format != FormatVersion {
		return fmt.Errorf("spk: %d is not a supported format version (want spk: %d)", p.Format, FormatVersion)
	}
	if p.Name == "" || strings.ContainsAny(p.Name, "/\\ \t\n") {
		return fmt.Errorf("the package needs a name without spaces or slashes (got %q)", p.Name)
	}
	declared := map[string]bool{}
	for name := range builtinVars {
		declared[name] = true
	}
	declare := func(comp string, vs []Variable) error {
		for _, v := range vs {
			if _, ok := builtinVars[v.Name]; ok {
				return stepErr(comp, "variables", "%s is a built-in host variable: refer to it without declaring it", v.Name)
			}
			if !isName(v.Name) {
				return stepErr(comp, "variables", "%q is not a variable name (letters, digits, _)", v.Name)
			}
			if declared[v.Name] {
				return stepErr(comp, "variables", "variable %s is declared twice", v.Name)
			}
			if reservedEnv(v.Name) {
				return stepErr(comp, "variables", "%s cannot be a package variable: values are handed to steps as environment variables and %s changes how commands run", v.Name, v.Name)
			}
			declared[v.Name] = true
		}
		return nil
	}
	if err := declare("main", p.Variables); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, c := range p.All() {
		if i > 0 && c.CompName == "" {
			return fmt.Errorf("component %d needs a name (component: NAME)", i)
		}
		if seen[c.CompName] {
			return fmt.Errorf("component %s appears twice", c.CompName)
		}
		seen[c.CompName] = true
		if err := declare(c.CompName, c.CompVars); err != nil {
			return err
		}
	}
	for _, c := range p.All() {
		if err := c.check(declared); err != nil {
			return err
		}
	}
	return nil
}

func (c *Component) check(vars map[string]bool) error {
	name := c.CompName
	refs := func(step string, ss ...string) error {
		for _, s := range ss {
			if err := checkRefs(s, vars); err != nil {
				return stepErr(name, step, "%v", err)
			}
		}
		return nil
	}
	for i, r := range c.Requirements {
		step := fmt.Sprintf("requirement %d", i+1)
		n := 0
		for _, set := range []bool{r.OS != nil, r.Memory != "", r.Disk != nil, r.File != nil, r.Env != nil, r.Setting != nil, r.Package != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			return stepErr(name, step, "give exactly one of os, memory, disk, file, env, setting, installed")
		}
		if r.Else != "" && r.Else != "skip" && r.Else != "fail" {
			return stepErr(name, step, "else: %q (want skip or fail)", r.Else)
		}
		if r.Memory != "" {
			if _, err := ParseSize(r.Memory); err != nil {
				return stepErr(name, step, "%v", err)
			}
		}
		if r.Disk != nil {
			if _, err := ParseSize(r.Disk.Free); err != nil {
				return stepErr(name, step, "%v", err)
			}
			if err := refs(step, r.Disk.Path); err != nil {
				return err
			}
		}
		if r.File != nil {
			if err := refs(step, r.File.Path); err != nil {
				return err
			}
		}
		if r.Setting != nil {
			if err := refs(step, r.Setting.File, r.Setting.Section, r.Setting.Key, deref(r.Setting.Value)); err != nil {
				return err
			}
		}
		if r.Env != nil {
			if err := refs(step, deref(r.Env.Value)); err != nil {
				return err
			}
		}
		for _, v := range []string{versionOf(r.OS), pkgVersionOf(r.Package)} {
			if v != "" {
				if _, _, err := parseConstraint(v); err != nil {
					return stepErr(name, step, "%v", err)
				}
			}
		}
	}
	checkActions := func(kind string, as []Action) error {
		for i, a := range as {
			step := fmt.Sprintf("%s step %d", kind, i+1)
			n := 0
			for _, set := range []bool{a.Service != nil, a.Script != "", len(a.Run) > 0, len(a.Dpkg) > 0, len(a.RPM) > 0} {
				if set {
					n++
				}
			}
			if n != 1 {
				return stepErr(name, step, "give exactly one of service, script, run, dpkg, rpm")
			}
			if a.Service != nil {
				switch a.Service.Action {
				case "start", "stop", "restart":
				default:
					return stepErr(name, step, "service action %q (want start, stop or restart)", a.Service.Action)
				}
				if a.Service.Name == "" {
					return stepErr(name, step, "service needs a name")
				}
			}
			if a.Timeout != "" {
				if d, err := time.ParseDuration(a.Timeout); err != nil || d <= 0 {
					return stepErr(name, step, "timeout %q: want a duration such as 30m", a.Timeout)
				}
			}
			// Values pasted into shell text would be parsed as shell
			// (TREE='x; rm -rf /'): scripts read them from the environment.
			var inScript []string
			scanRefs(a.Script, func(_, _ int, v string) bool {
				inScript = append(inScript, v)
				return true
			})
			if len(inScript) > 0 {
				return stepErr(name, step, "%%%s%% in a script: values reach scripts as environment variables, write \"$%s\" (or use run: [argv], where values are single arguments)", inScript[0], inScript[0])
			}
			all := append(append(append(append(append([]string{a.Dir, a.Creates}, a.Run...), a.Dpkg...), a.RPM...), a.Undo...), a.Unless...)
			if a.Service != nil {
				all = append(all, a.Service.Name)
			}
			if err := refs(step, all...); err != nil {
				return err
			}
		}
		return nil
	}
	if err := checkActions("pre_install", c.PreInstall); err != nil {
		return err
	}
	for i, f := range c.Files {
		step := fmt.Sprintf("files step %d", i+1)
		n := 0
		for _, s := range []string{f.FromPackage, f.Copy, f.Move, f.Delete} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			return stepErr(name, step, "give exactly one of from_package, copy, move, delete")
		}
		if f.Delete != "" {
			if f.To != "" || f.Mode != "" {
				return stepErr(name, step, "delete takes neither to: nor mode:")
			}
		} else if f.To == "" {
			return stepErr(name, step, "a destination (to:) is needed")
		}
		if f.Mode != "" {
			if _, err := parseMode(f.Mode); err != nil {
				return stepErr(name, step, "%v", err)
			}
		}
		if f.FromPackage != "" {
			if err := checkContentPath(f.FromPackage); err != nil {
				return stepErr(name, step, "%v", err)
			}
		}
		if err := refs(step, f.Copy, f.Move, f.Delete, f.To); err != nil {
			return err
		}
	}
	for i, e := range c.Edits {
		step := fmt.Sprintf("edits step %d (%s)", i+1, e.File)
		n := 0
		if e.Replace != nil {
			n++
			if e.Replace.Search == "" {
				return stepErr(name, step, "replace needs a search string")
			}
		}
		if e.RemoveLines != nil && *e.RemoveLines == "" {
			return stepErr(name, step, "remove_lines needs a text")
		}
		if e.Unset != nil && e.Unset.Key == "" {
			return stepErr(name, step, "unset needs a key")
		}
		for _, set := range []bool{e.Append != nil, e.Prepend != nil, e.Set != nil, e.RemoveLines != nil, e.Unset != nil} {
			if set {
				n++
			}
		}
		for _, ins := range []*InsertAt{e.InsertBefore, e.InsertAfter} {
			if ins != nil {
				n++
				if ins.Match == "" {
					return stepErr(name, step, "insert needs a match string")
				}
			}
		}
		if e.Set != nil && e.Set.Key == "" {
			return stepErr(name, step, "set needs a key")
		}
		texts := e.texts()
		if n != 1 {
			return stepErr(name, step, "give exactly one of replace, append, prepend, insert_before, insert_after, set, remove_lines, unset")
		}
		if e.File == "" {
			return stepErr(name, step, "an edit needs a file")
		}
		if err := refs(step, texts...); err != nil {
			return err
		}
	}
	return checkActions("post_install", c.PostInstall)
}

// texts are every string of the edit that variables expand in.
func (e Edit) texts() []string {
	out := []string{e.File}
	if e.Replace != nil {
		out = append(out, e.Replace.Search, e.Replace.With)
	}
	if e.Append != nil {
		out = append(out, *e.Append)
	}
	if e.Prepend != nil {
		out = append(out, *e.Prepend)
	}
	for _, ins := range []*InsertAt{e.InsertBefore, e.InsertAfter} {
		if ins != nil {
			out = append(out, ins.Match, ins.Lines)
		}
	}
	if e.Set != nil {
		out = append(out, e.Set.Section, e.Set.Key, e.Set.Value)
	}
	if e.RemoveLines != nil {
		out = append(out, *e.RemoveLines)
	}
	if e.Unset != nil {
		out = append(out, e.Unset.Section, e.Unset.Key)
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func versionOf(o *OSReq) string {
	if o == nil {
		return ""
	}
	return o.Version
}

func pkgVersionOf(p *PkgReq) string {
	if p == nil {
		return ""
	}
	return p.Version
}

// reservedEnv are environment variables that change how the shell,
// the loader or commands behave: a package value must not replace them.
func reservedEnv(name string) bool {
	switch strings.ToUpper(name) {
	case "PATH", "IFS", "ENV", "BASH_ENV", "CDPATH", "HOME", "SHELL", "PS4", "SHELLOPTS", "BASHOPTS", "GLOBIGNORE", "PWD", "OLDPWD", "TMPDIR", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "PERL5LIB", "PERL5OPT", "RUBYOPT", "NODE_OPTIONS", "GCONV_PATH":
		return true
	}
	u := strings.ToUpper(name)
	return strings.HasPrefix(u, "LD_") || strings.HasPrefix(u, "DYLD_") || strings.HasPrefix(u, "BASH_FUNC") || strings.HasPrefix(u, "LC_")
}

// checkContentPath keeps package content references inside the package.
func checkContentPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") {
		return fmt.Errorf("package path %q must be relative to the package content", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return fmt.Errorf("package path %q leaves the package content", p)
		}
	}
	return nil
}
