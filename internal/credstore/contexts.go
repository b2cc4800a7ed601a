package credstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"zonekit/internal/atomicfile"
	"zonekit/internal/errkind"
)

// Context is a saved way to reach one zone as one administrator, as
// kubectl's contexts are: never a password, only where to read it.
type Context struct {
	Host            string `json:"host,omitempty"`
	Port            int    `json:"port,omitempty"`
	CACert          string `json:"cacert,omitempty"` // absolute path
	User            string `json:"user,omitempty"`
	PasswordFile    string `json:"password_file,omitempty"`
	PasswordCommand string `json:"password_command,omitempty"`
}

// Contexts is the file of saved contexts and the one in use.
type Contexts struct {
	Current  string             `json:"current,omitempty"`
	Contexts map[string]Context `json:"contexts"`
	path     string
}

// LoadContexts reads the contexts in dir (see ConfigDir); a missing file
// is an empty set.
func LoadContexts(dir string) (*Contexts, error) {
	c := &Contexts{Contexts: map[string]Context{}, path: filepath.Join(ConfigDir(dir), "zman-contexts.json")}
	data, err := os.ReadFile(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read zman contexts: %w", err)
	}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("zman contexts %s are corrupt (fix or remove the file): %w", c.path, err)
	}
	if c.Contexts == nil {
		c.Contexts = map[string]Context{}
	}
	return c, nil
}

// Path is the contexts file.
func (c *Contexts) Path() string { return c.path }

// Get returns the context named name.
func (c *Contexts) Get(name string) (Context, error) {
	ctx, ok := c.Contexts[name]
	if !ok {
		return Context{}, errkind.New(errkind.NotFound, "no zman context %q (zman context-list shows them)", name)
	}
	return ctx, nil
}

// Names lists the contexts in order.
func (c *Contexts) Names() []string {
	var names []string
	for n := range c.Contexts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Save writes the file atomically, readable by its owner only.
func (c *Contexts) Save() error {
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return fmt.Errorf("zman config directory: %w", err)
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(c.path, append(data, '\n'), 0o600)
}
