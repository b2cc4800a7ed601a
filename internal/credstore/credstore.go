// Package credstore keeps zman's stored credentials: per zone server, the
// administrator name and a revocable token issued by the server (never the
// password), in a 0600 file that cron jobs can use.
package credstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"zonekit/internal/atomicfile"
)

// DirEnv overrides the directory of the credential file.
const DirEnv = "ZMAN_CONFIG_DIR"

// Credential is one stored credential.
type Credential struct {
	Admin string `json:"admin"`
	Token string `json:"token"`
}

// Store is the credential file.
type Store struct{ path string }

// New returns the store in dir, or $ZMAN_CONFIG_DIR, or the user's config directory.
func New(dir string) *Store {
	return &Store{path: filepath.Join(ConfigDir(dir), "zman-credentials.json")}
}

// ConfigDir is where zman keeps its files: dir, or $ZMAN_CONFIG_DIR, or
// zonekit in the user's config directory.
func ConfigDir(dir string) string {
	if dir == "" {
		dir = os.Getenv(DirEnv)
	}
	if dir == "" {
		if d, err := os.UserConfigDir(); err == nil {
			dir = filepath.Join(d, "zonekit")
		} else {
			dir = ".zonekit"
		}
	}
	return dir
}

// Path is the file's location.
func (s *Store) Path() string { return s.path }

func (s *Store) read() (map[string]Credential, error) {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]Credential{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read stored credentials: %w", err)
	}
	m := map[string]Credential{}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("stored credentials %s are corrupt (remove the file and store them again): %w", s.path, err)
	}
	return m, nil
}

func (s *Store) write(m map[string]Credential) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("credential directory: %w", err)
	}
	if len(m) == 0 {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(s.path, append(data, '\n'), 0o600)
}

// Get returns the credential stored for server.
func (s *Store) Get(server string) (Credential, bool, error) {
	m, err := s.read()
	if err != nil {
		return Credential{}, false, err
	}
	c, ok := m[server]
	return c, ok, nil
}

// Put stores c for server.
func (s *Store) Put(server string, c Credential) error {
	m, err := s.read()
	if err != nil {
		return err
	}
	m[server] = c
	return s.write(m)
}

// Delete forgets server's credential and reports whether there was one.
func (s *Store) Delete(server string) (Credential, bool, error) {
	m, err := s.read()
	if err != nil {
		return Credential{}, false, err
	}
	c, ok := m[server]
	delete(m, server)
	return c, ok, s.write(m)
}
