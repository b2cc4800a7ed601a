// Package settings binds a command's settings (flags, environment,
// configuration files) in one viper instance, for zman and pbserv. zac
// does not link viper (cmdutil.FlagOrEnv reads its few settings).
package settings

import (
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Bind binds a command's settings in one viper instance, the one
// mechanism for flags, environment and configuration files: each key of
// keys is read from its flag (named by the value) when set, else from the
// variable PREFIX_KEY (upper case), else from what the caller adds
// (SetDefault, a configuration file).
func Bind(flags *pflag.FlagSet, prefix string, keys map[string]string) *viper.Viper {
	v := viper.New()
	v.SetEnvPrefix(prefix)
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	for key, flag := range keys {
		v.BindEnv(key)
		if flags != nil && flag != "" {
			if f := flags.Lookup(flag); f != nil {
				v.BindPFlag(key, f)
			}
		}
	}
	return v
}
