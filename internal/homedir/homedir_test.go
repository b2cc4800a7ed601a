package homedir_test

import (
	"os"
	"testing"

	"zonekit/internal/homedir"
)

func TestResolve(t *testing.T) {
	t.Setenv("ZONEKIT_TEST_HOME", "")
	t.Setenv("XDG_DATA_HOME", "/xdg")
	if got := homedir.Resolve("/flag", "ZONEKIT_TEST_HOME", "/root", "zk"); got != "/flag" {
		t.Errorf("flag: got %s", got)
	}
	t.Setenv("ZONEKIT_TEST_HOME", "/env")
	if got := homedir.Resolve("", "ZONEKIT_TEST_HOME", "/root", "zk"); got != "/env" {
		t.Errorf("env: got %s", got)
	}
	t.Setenv("ZONEKIT_TEST_HOME", "")
	want := "/xdg/zk"
	if os.Geteuid() == 0 {
		want = "/root"
	}
	if got := homedir.Resolve("", "ZONEKIT_TEST_HOME", "/root", "zk"); got != want {
		t.Errorf("default: got %s, want %s", got, want)
	}
}
