package zconfigure

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/config"
	"zonekit/internal/errkind"
	"zonekit/internal/ui"
)

func TestRewriteAction(t *testing.T) {
	tests := []struct {
		args, want []string
	}{
		{[]string{"-c", "NewZone", "--zone-name", "x"}, []string{"NewZone", "--zone-name", "x"}},
		{[]string{"-cNewZone", "--zone-name", "x"}, []string{"NewZone", "--zone-name", "x"}},
		{[]string{"--configure", "Start", "--action", "stop"}, []string{"Start", "--action", "stop"}},
		{[]string{"--configure=Start", "--action", "stop"}, []string{"Start", "--action", "stop"}},
		// Global flags before the action stay, after it.
		{[]string{"--home", "/h", "-Z", "-c", "Start"}, []string{"Start", "--home", "/h", "-Z"}},
		{[]string{"-D", "server.port=8443", "-cStart", "--action", "restart"}, []string{"Start", "-D", "server.port=8443", "--action", "restart"}},
		// No action: untouched.
		{[]string{"-l"}, []string{"-l"}},
		{[]string{"-D", "log.level=debug"}, []string{"-D", "log.level=debug"}},
		{[]string{}, []string{}},
		// -c without a name is left for cobra to report.
		{[]string{"-c"}, []string{"-c"}},
		// After "--" nothing is an option.
		{[]string{"--", "-c", "NewZone"}, []string{"--", "-c", "NewZone"}},
		// A shell's completion request: the word being completed stays last.
		{[]string{"__complete", "-c", "New"}, []string{"__complete", "New"}},
		{[]string{"__completeNoDesc", "--home", "/h", "-c", ""}, []string{"__completeNoDesc", "--home", "/h", ""}},
		{[]string{"__complete", "-c", "NewZone", "--zone-"}, []string{"__complete", "NewZone", "--zone-"}},
		{[]string{"__complete", "-cStart", "--action", ""}, []string{"__complete", "Start", "--action", ""}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			in := slices.Clone(tt.args)
			got := RewriteAction(tt.args)
			if !slices.Equal(got, tt.want) {
				t.Errorf("RewriteAction(%q) = %q, want %q", tt.args, got, tt.want)
			}
			if !slices.Equal(tt.args, in) {
				t.Errorf("RewriteAction changed its input to %q", tt.args)
			}
		})
	}
}

// rootWith builds the real zconfigure tree with the action named like cmd
// replaced by cmd, so that the root's persistent flags apply to it.
func rootWith(opts *Options, cmd *cobra.Command) *cobra.Command {
	root := NewRoot(opts)
	for _, c := range root.Commands() {
		if c.Name() == cmd.Name() {
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(cmd)
	return root
}

func execute(t *testing.T, root *cobra.Command, io *ui.IOStreams, args ...string) error {
	t.Helper()
	cmdutil.Prepare(root, io)
	root.SetArgs(RewriteAction(args))
	return root.Execute()
}

func TestNewZoneFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(*testing.T, *NewZoneOptions)
		wantErr string
	}{
		{
			name: "defaults",
			args: []string{"-c", "NewZone", "--zone-name", "Acme"},
			check: func(t *testing.T, o *NewZoneOptions) {
				if o.ZoneName != "Acme" || o.AdminName != "Administrator" || o.Port != 443 || o.KeyType != "ecdsa-p256" || o.CAYears != 10 {
					t.Errorf("options %+v", *o)
				}
				if len(o.DNSNames) != 0 || len(o.IPs) != 0 || o.NoPrompt || o.Home != "" {
					t.Errorf("unset flags came out set: %+v", *o)
				}
				if o.changed("port") || !o.changed("zone-name") {
					t.Error("changed() does not reflect the command line")
				}
			},
		},
		{
			name: "every flag",
			args: []string{"--home", "/srv/zone", "-Z", "-D", "log.level=debug", "-c", "NewZone",
				"--zone-name", "Acme", "--admin-name", "root", "--admin-password-file", "pw.txt", "--admin-password-env", "PW",
				"--dns", "zone1.acme.example,zone1", "--dns", "localhost", "--ip", "10.0.0.5", "--ip", "::1",
				"--port", "8443", "--key-type", "rsa-2048", "--ca-years", "5"},
			check: func(t *testing.T, o *NewZoneOptions) {
				want := NewZoneOptions{ZoneName: "Acme", AdminName: "root", Password: cmdutil.PasswordFlags{File: "pw.txt", Env: "PW"},
					DNSNames: []string{"zone1.acme.example", "zone1", "localhost"}, IPs: []string{"10.0.0.5", "::1"},
					Port: 8443, KeyType: "rsa-2048", CAYears: 5}
				got := *o
				got.Options, got.changed = nil, nil
				if !equalNewZone(got, want) {
					t.Errorf("options\n got %+v\nwant %+v", got, want)
				}
				if o.Home != "/srv/zone" || !o.NoPrompt || !slices.Equal(o.Properties, []string{"log.level=debug"}) {
					t.Errorf("global flags: home %q no-prompt %v properties %q", o.Home, o.NoPrompt, o.Properties)
				}
				if !o.changed("port") || !o.changed("dns") {
					t.Error("changed() misses flags that were given")
				}
			},
		},
		{name: "unknown flag", args: []string{"-c", "NewZone", "--zone", "Acme"}, wantErr: "unknown flag"},
		{name: "port not a number", args: []string{"-c", "NewZone", "--port", "https"}, wantErr: "invalid argument"},
		{name: "argument", args: []string{"-c", "NewZone", "Acme"}, wantErr: "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			io, _, _, _ := ui.Test()
			opts := &Options{IO: io}
			var got *NewZoneOptions
			root := rootWith(opts, newNewZone(opts, func(o *NewZoneOptions) error { got = o; return nil }))
			err := execute(t, root, io, tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
				}
				if errkind.Of(err) != errkind.Usage {
					t.Errorf("error %q is not a usage error", err)
				}
				if got != nil {
					t.Error("the action ran despite the error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Fatal("the action did not run")
			}
			tt.check(t, got)
		})
	}
}

func equalNewZone(a, b NewZoneOptions) bool {
	return a.ZoneName == b.ZoneName && a.AdminName == b.AdminName && a.Password.File == b.Password.File &&
		a.Password.Env == b.Password.Env && a.Password.Command == b.Password.Command && slices.Equal(a.DNSNames, b.DNSNames) && slices.Equal(a.IPs, b.IPs) &&
		a.Port == b.Port && a.KeyType == b.KeyType && a.CAYears == b.CAYears
}

func TestStartFlags(t *testing.T) {
	tests := []struct {
		args   []string
		action string
		wait   time.Duration
		home   string
	}{
		{[]string{"-c", "Start"}, "", 30 * time.Second, ""},
		{[]string{"-c", "Start", "--action", "stop", "--wait", "5s"}, "stop", 5 * time.Second, ""},
		{[]string{"--home", "/z", "-cStart", "--action=status"}, "status", 30 * time.Second, "/z"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			io, _, _, _ := ui.Test()
			opts := &Options{IO: io}
			var got *StartOptions
			root := rootWith(opts, newStart(opts, func(o *StartOptions) error { got = o; return nil }))
			if err := execute(t, root, io, tt.args...); err != nil {
				t.Fatal(err)
			}
			if got == nil || got.Action != tt.action || got.Wait != tt.wait || got.Home != tt.home {
				t.Errorf("options %+v", got)
			}
		})
	}
}

// Without a terminal, or with -Z, nothing is asked: a missing value is an
// error naming the flag.
func TestNonInteractiveRequired(t *testing.T) {
	home := t.TempDir()
	tests := []struct {
		args []string
		says string
	}{
		{[]string{"--home", home, "-c", "NewZone"}, "--zone-name is required"},
		{[]string{"--home", home, "-c", "Start"}, "--action (start, stop, restart or status) is required"},
	}
	for _, tt := range tests {
		t.Run(tt.says, func(t *testing.T) {
			io, _, _, _ := ui.Test()
			opts := &Options{IO: io}
			err := execute(t, NewRoot(opts), io, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.says) || errkind.Of(err) != errkind.Usage {
				t.Errorf("error %v; want a usage error saying %q", err, tt.says)
			}
		})
	}
	if entries, _ := os.ReadDir(home); len(entries) != 0 {
		t.Errorf("refused commands wrote %d entries into the home", len(entries))
	}
}

func TestNewZoneRun(t *testing.T) {
	home := filepath.Join(t.TempDir(), "zone")
	t.Setenv(PasswordEnvDefault, "a good password")
	io, _, out, _ := ui.Test()
	err := execute(t, NewRoot(&Options{IO: io}), io, "--home", home, "-Z", "-D", "log.level=warn",
		"-c", "NewZone", "--zone-name", "Acme", "--dns", "localhost", "--ip", "127.0.0.1", "--port", "8443", "--ca-years", "1")
	if err != nil {
		t.Fatalf("NewZone: %v", err)
	}
	for _, want := range []string{"Created zone", "Acme", "CA SHA-256", "Start the zone server with"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
	p := config.Paths{Home: home}
	cfg, err := config.LoadServer(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 8443 || cfg.LogLevel != "warn" || cfg.ServerID == "" {
		t.Errorf("configuration %+v; want port 8443, log.level from -D and a server id", cfg)
	}

	// A second NewZone in the same home is refused.
	io, _, _, _ = ui.Test()
	err = execute(t, NewRoot(&Options{IO: io}), io, "--home", home, "-Z", "-c", "NewZone", "--zone-name", "Other")
	if errkind.Of(err) != errkind.Exists {
		t.Errorf("second NewZone = %v; want an Exists error", err)
	}

	// -D alone changes the configuration of the existing zone.
	io, _, out, _ = ui.Test()
	if err := execute(t, NewRoot(&Options{IO: io}), io, "--home", home, "-D", "server.port=9443"); err != nil {
		t.Fatal(err)
	}
	if cfg, _ := config.LoadServer(p); cfg.Port != 9443 {
		t.Errorf("after -D server.port=9443 the port is %d", cfg.Port)
	}
	if !strings.Contains(out.String(), "restart the zone server") {
		t.Errorf("output %q should say to restart the server", out)
	}
}

func TestList(t *testing.T) {
	io, _, out, _ := ui.Test()
	if err := execute(t, NewRoot(&Options{IO: io}), io, "-l"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NewZone", "Start", "server.port", "registration.require-key"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-l does not list %q:\n%s", want, out)
		}
	}
	if strings.Contains(out.String(), "serve ") {
		t.Errorf("-l lists serve, which is not a -c action:\n%s", out)
	}
}
