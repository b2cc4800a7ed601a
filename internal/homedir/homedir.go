// Package homedir picks a program's home directory. It is apart from
// internal/config, which reads the zone server's configuration with viper,
// so that zac (which needs only this) does not link viper.
package homedir

import (
	"os"
	"path/filepath"
)

// Resolve picks a program's home directory: the flag, else $env, else
// rootDir for root, else name under the user's data directory, so that an
// unprivileged trial never needs sudo.
func Resolve(flag, env, rootDir, name string) string {
	if flag != "" {
		return flag
	}
	if e := os.Getenv(env); e != "" {
		return e
	}
	if os.Geteuid() == 0 {
		return rootDir
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, name)
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", name)
	}
	return name
}
