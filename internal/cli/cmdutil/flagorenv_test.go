package cmdutil_test

import (
	"testing"

	"github.com/spf13/pflag"

	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/cli/settings"
)

// FlagOrEnv reads what settings.Bind (viper) reads, for every mix of a
// flag given or not, a default, and the variable set, empty or unset.
func TestFlagOrEnvMatchesBind(t *testing.T) {
	for _, def := range []string{"", "dflt"} {
		for _, args := range [][]string{nil, {"--user", "flag"}, {"--user="}} {
			for _, env := range []*string{nil, ptr(""), ptr("env")} {
				t.Run("", func(t *testing.T) {
					if env != nil {
						t.Setenv("ZTEST_USER", *env)
					}
					fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
					fs.StringP("user", "u", def, "")
					if err := fs.Parse(args); err != nil {
						t.Fatal(err)
					}
					want := settings.Bind(fs, "ZTEST", map[string]string{"user": "user"}).GetString("user")
					if got := cmdutil.FlagOrEnv(fs, "user", "ZTEST_USER"); got != want {
						t.Errorf("default %q, args %q, env %v: %q, viper reads %q", def, args, env, got, want)
					}
				})
			}
		}
	}
}

func ptr(s string) *string { return &s }
