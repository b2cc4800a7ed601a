package agentpack

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"zonekit/internal/atomicfile"
	"zonekit/internal/config"
)

// Dir is where a zone server keeps its packs: default/ for the default
// packs, custom/NAME/ for each custom pack.
func Dir(p config.Paths) string { return filepath.Join(p.Data(), "agent-packs") }

// DefaultDir holds the default packs.
func DefaultDir(p config.Paths) string { return filepath.Join(Dir(p), "default") }

// CustomDir holds the custom pack called name.
func CustomDir(p config.Paths, name string) string { return filepath.Join(Dir(p), "custom", name) }

// CustomFile keeps the administrator's custom pack definitions, under conf/
// so that a server backup carries them.
func CustomFile(p config.Paths) string { return filepath.Join(p.Conf(), "agent-packs.json") }

// Custom is an administrator-defined pack: the options it is rebuilt with.
// The device group (and so its place in the zone) follows from the
// registration key, as with 'zman registration-key-create -g GROUP'.
type Custom struct {
	Name      string   `json:"name"`
	RegKey    string   `json:"registration_key,omitempty"`
	Interval  string   `json:"interval,omitempty"`
	Servers   []string `json:"servers,omitempty"` // empty: the zone's list at build time
	Platforms []string `json:"platforms,omitempty"`
}

// LoadCustom reads the custom pack definitions; none is an empty list.
func LoadCustom(p config.Paths) ([]Custom, error) {
	data, err := os.ReadFile(CustomFile(p))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var list []Custom
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("%s: %w", CustomFile(p), err)
	}
	return list, nil
}

// SaveCustom writes the definitions (0600: they hold registration keys).
func SaveCustom(p config.Paths, list []Custom) error {
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(CustomFile(p), append(data, '\n'), 0o600)
}
