package zconfigure

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"zonekit/internal/errkind"
	"zonekit/internal/ui"
)

func TestPackFlags(t *testing.T) {
	io, _, _, _ := ui.Test()
	opts := &Options{IO: io}
	var got *PackOptions
	root := rootWith(opts, newCreatePacks(opts, func(o *PackOptions) error { got = o; return nil }))
	if err := execute(t, root, io, "-c", "CreateExtractorPacks", "-Z", "--zac-dir", "/a", "--platform", "linux/arm64",
		"--platform", "windows/amd64", "--server", "https://z:1"); err != nil {
		t.Fatal(err)
	}
	if got == nil || got.ZacDir != "/a" || !slices.Equal(got.Platforms, []string{"linux/arm64", "windows/amd64"}) || !slices.Equal(got.Servers, []string{"https://z:1"}) {
		t.Errorf("options %+v", got)
	}

	var rb *RebuildOptions
	opts = &Options{IO: io}
	root = rootWith(opts, newRebuildPacks(opts, func(o *RebuildOptions) error { rb = o; return nil }))
	if err := execute(t, root, io, "-cRebuildCustomPacks", "--name", "branch", "-k", "key1", "--interval", "5m", "--build-from", "/src"); err != nil {
		t.Fatal(err)
	}
	if rb == nil || rb.Name != "branch" || rb.Key != "key1" || rb.Interval != 5*time.Minute || rb.BuildFrom != "/src" {
		t.Errorf("options %+v", rb)
	}
}

func TestRebuildPacksRun(t *testing.T) {
	home := filepath.Join(t.TempDir(), "zone")
	t.Setenv(PasswordEnvDefault, "a good password")
	io, _, _, _ := ui.Test()
	if err := execute(t, NewRoot(&Options{IO: io}), io, "--home", home, "-Z", "-c", "NewZone", "--zone-name", "Acme",
		"--dns", "localhost", "--port", "8443", "--ca-years", "1"); err != nil {
		t.Fatal(err)
	}
	io, _, out, _ := ui.Test()
	if err := execute(t, NewRoot(&Options{IO: io}), io, "--home", home, "-c", "RebuildCustomPacks", "-Z"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "No custom packs are defined") {
		t.Errorf("output %q", out)
	}
	for _, tt := range []struct {
		args []string
		kind errkind.Kind
		says string
	}{
		{[]string{"--key", "k"}, errkind.Usage, "--key and --interval need --name NAME"},
		{[]string{"--delete", "nope"}, errkind.NotFound, `no custom pack "nope"`},
		{[]string{"--name", "../x"}, errkind.Usage, `--name "../x"`},
		{[]string{"--name", "b", "--zac-dir", t.TempDir()}, errkind.NotFound, "no zac for linux/amd64: put zac-linux-amd64 in "},
	} {
		io, _, _, _ := ui.Test()
		err := execute(t, NewRoot(&Options{IO: io}), io, append([]string{"--home", home, "-c", "RebuildCustomPacks"}, tt.args...)...)
		if errkind.Of(err) != tt.kind || err == nil || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%v: error %v, want %v saying %q", tt.args, err, tt.kind, tt.says)
		}
	}
	// Nothing was defined by the refused commands.
	if _, err := os.Stat(filepath.Join(home, "conf", "agent-packs.json")); !os.IsNotExist(err) {
		t.Errorf("agent-packs.json written: %v", err)
	}
}
