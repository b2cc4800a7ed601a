package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"zonekit/internal/config"
	"zonekit/internal/errkind"
)

func TestParseAssignment(t *testing.T) {
	tests := []struct {
		in        string
		name, val string
		wantErr   string // substring; empty means success
	}{
		{in: "server.port=8443", name: "server.port", val: "8443"},
		{in: " server.port = 8443 ", name: "server.port", val: "8443"},
		{in: "log.level=debug", name: "log.level", val: "debug"},
		{in: "registration.require-key=true", name: "registration.require-key", val: "true"},
		{in: "server.shutdown-timeout=1m30s", name: "server.shutdown-timeout", val: "1m30s"},
		{in: "server.address=", name: "server.address", val: ""},
		{in: "server.address=a=b", name: "server.address", val: "a=b"}, // only the first '=' splits
		{in: "server.port", wantErr: "want name=value"},
		{in: "=8443", wantErr: "want name=value"},
		{in: "", wantErr: "want name=value"},
		{in: "server.colour=blue", wantErr: "unknown property"},
		{in: "Server.Port=443", wantErr: "unknown property"},
		{in: "server.port=0", wantErr: "not a port"},
		{in: "server.port=65536", wantErr: "not a port"},
		{in: "server.port=https", wantErr: "not a port"},
		{in: "log.level=verbose", wantErr: "not one of"},
		{in: "registration.require-key=maybe", wantErr: "not true or false"},
		{in: "server.shutdown-timeout=30", wantErr: "not a duration"},
		{in: "server.id=", wantErr: "must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			name, val, err := config.ParseAssignment(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseAssignment(%q) = %q, %q; want an error", tt.in, name, val)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not say %q", err, tt.wantErr)
				}
				if errkind.Of(err) != errkind.Usage {
					t.Errorf("error %q is not a usage error", err)
				}
				return
			}
			if err != nil || name != tt.name || val != tt.val {
				t.Errorf("ParseAssignment(%q) = %q, %q, %v; want %q, %q", tt.in, name, val, err, tt.name, tt.val)
			}
		})
	}
}

// Every property's default must pass its own check, or a fresh zone could
// not load its configuration.
func TestPropertyDefaultsAreValid(t *testing.T) {
	for _, p := range config.Properties() {
		if p.Name == "server.id" {
			continue // set by NewZone; no sensible default
		}
		if _, _, err := config.ParseAssignment(p.Name + "=" + p.Default); err != nil {
			t.Errorf("default of %s: %v", p.Name, err)
		}
	}
}

func newHome(t *testing.T) config.Paths {
	t.Helper()
	p := config.Paths{Home: filepath.Join(t.TempDir(), "zone")}
	if err := p.Layout(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPropertiesRoundTrip(t *testing.T) {
	p := newHome(t)
	props := map[string]string{
		"server.id":                "3f2a",
		"server.port":              "8443",
		"server.address":           "127.0.0.1",
		"log.level":                "debug",
		"registration.require-key": "true",
		"server.shutdown-timeout":  "5s",
	}
	if err := config.WriteProperties(p, props); err != nil {
		t.Fatal(err)
	}
	got, err := config.ReadProperties(p)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range props {
		if got[k] != v {
			t.Errorf("ReadProperties[%s] = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(props) {
		t.Errorf("ReadProperties = %v, want exactly %v", got, props)
	}

	s, err := config.LoadServer(p)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Server{ServerID: "3f2a", Address: "127.0.0.1", Port: 8443, LogLevel: "debug",
		RegistrationRequiresKey: true, ShutdownTimeout: 5 * time.Second, ScrubInterval: 168 * time.Hour, OCS: config.OCS{Enabled: true, PrologFreq: 10, InventoryEvery: 24}, Cluster: config.Cluster{HeartbeatTimeout: time.Second}}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("LoadServer = %+v, want %+v", s, want)
	}

	// The file is sorted, so it diffs well and is the same for the same content.
	data, err := os.ReadFile(p.ConfigFile())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, line := range strings.Split(string(data), "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			keys = append(keys, k)
		}
	}
	for i := 1; i < len(keys); i++ {
		if keys[i-1] > keys[i] {
			t.Errorf("configuration file is not sorted: %q before %q", keys[i-1], keys[i])
		}
	}
}

func TestLoadServerDefaults(t *testing.T) {
	p := newHome(t)
	if err := config.WriteProperties(p, map[string]string{"server.id": "abc"}); err != nil {
		t.Fatal(err)
	}
	s, err := config.LoadServer(p)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Server{ServerID: "abc", Port: 443, LogLevel: "info", ShutdownTimeout: 30 * time.Second, ScrubInterval: 168 * time.Hour,
		OCS: config.OCS{Enabled: true, PrologFreq: 10, InventoryEvery: 24}, Cluster: config.Cluster{HeartbeatTimeout: time.Second}}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("LoadServer = %+v, want defaults %+v", s, want)
	}
}

func TestLoadServerEnvOverride(t *testing.T) {
	p := newHome(t)
	if err := config.WriteProperties(p, map[string]string{"server.id": "abc", "server.port": "8443"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ZONEKIT_SERVER_PORT", "9443")
	t.Setenv("ZONEKIT_REGISTRATION_REQUIRE_KEY", "true")
	s, err := config.LoadServer(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.Port != 9443 || !s.RegistrationRequiresKey {
		t.Errorf("LoadServer = %+v; want port 9443 and require-key from the environment", s)
	}

	t.Setenv("ZONEKIT_SERVER_PORT", "not-a-port")
	if _, err := config.LoadServer(p); err == nil || !strings.Contains(err.Error(), "server.port") {
		t.Errorf("LoadServer with a bad port in the environment = %v; want an error naming server.port", err)
	}
}

func TestLoadServerInvalidFile(t *testing.T) {
	p := newHome(t)
	if err := os.WriteFile(p.ConfigFile(), []byte("server.id=abc\nlog.level=loud\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := config.LoadServer(p)
	if err == nil || !strings.Contains(err.Error(), "log.level") || !strings.Contains(err.Error(), p.ConfigFile()) {
		t.Errorf("LoadServer = %v; want an error naming the file and log.level", err)
	}
}

func TestReadPropertiesSyntax(t *testing.T) {
	p := newHome(t)
	file := "# comment\n\n  server.id = abc  \nServer.Port=8443\n"
	if err := os.WriteFile(p.ConfigFile(), []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := config.ReadProperties(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["server.id"] != "abc" || got["server.port"] != "8443" {
		t.Errorf("ReadProperties = %v", got)
	}
	if err := os.WriteFile(p.ConfigFile(), []byte("server.id=abc\nport 8443\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := config.ReadProperties(p); err == nil || !strings.Contains(err.Error(), "zoneserver.conf:2") {
		t.Errorf("ReadProperties on a line without '=' = %v; want an error naming line 2", err)
	}
}

func TestLoadServerMissingFile(t *testing.T) {
	p := config.Paths{Home: t.TempDir()}
	if _, err := config.LoadServer(p); err == nil {
		t.Error("LoadServer without a configuration file succeeded")
	}
}

func TestSetProperties(t *testing.T) {
	p := newHome(t)
	if err := config.WriteProperties(p, map[string]string{"server.id": "abc", "server.port": "443"}); err != nil {
		t.Fatal(err)
	}
	if err := config.SetProperties(p, []string{"server.port=8443", "log.level=warn"}); err != nil {
		t.Fatal(err)
	}
	got, err := config.ReadProperties(p)
	if err != nil {
		t.Fatal(err)
	}
	if got["server.id"] != "abc" || got["server.port"] != "8443" || got["log.level"] != "warn" {
		t.Errorf("after SetProperties: %v", got)
	}
	// A bad assignment changes nothing, not even the valid ones before it.
	if err := config.SetProperties(p, []string{"server.port=1", "log.level=loud"}); err == nil {
		t.Fatal("SetProperties with a bad value succeeded")
	}
	if got, _ := config.ReadProperties(p); got["server.port"] != "8443" {
		t.Errorf("a refused SetProperties still wrote server.port=%s", got["server.port"])
	}
}

func TestLayout(t *testing.T) {
	setUmask(t, 0o022)
	p := config.Paths{Home: filepath.Join(t.TempDir(), "zone")}
	// A security directory left too open by hand is tightened.
	if err := os.MkdirAll(p.Security(), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := p.Layout(); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]os.FileMode{
		p.Home:          0o755,
		p.Conf():        0o755,
		p.Security():    0o700,
		p.Data():        0o750,
		p.ContentRepo(): 0o750,
		p.Logs():        0o750,
		p.RemintRepo():  0o700,
	} {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Errorf("%s: %v", dir, err)
			continue
		}
		if !fi.IsDir() || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want directory %v", dir, fi.Mode(), want)
		}
	}
	// The keys live under the 0700 directory.
	for _, f := range []string{p.CAKey(), p.ServerKey()} {
		if filepath.Dir(f) != p.Security() {
			t.Errorf("%s is not in the security directory", f)
		}
	}
	// Running it again is harmless.
	if err := p.Layout(); err != nil {
		t.Errorf("second Layout: %v", err)
	}
}

func TestCheckZone(t *testing.T) {
	p := config.Paths{Home: t.TempDir()}
	err := p.CheckZone()
	if errkind.Of(err) != errkind.NotFound || !strings.Contains(err.Error(), "NewZone") {
		t.Errorf("CheckZone on an empty home = %v; want NotFound with advice", err)
	}
	if err := p.Layout(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.Store(), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.CheckZone(); err != nil {
		t.Errorf("CheckZone with a store = %v", err)
	}
}
