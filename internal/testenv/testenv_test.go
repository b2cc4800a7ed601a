package testenv

import (
	"testing"
)

// fakeT records whether a test was skipped or failed.
type fakeT struct {
	testing.TB
	skipped, failed bool
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Skip(...any)           { f.skipped = true }
func (f *fakeT) Fatalf(string, ...any) { f.failed = true }
func (f *fakeT) Skipf(string, ...any)  { f.skipped = true }

func TestMissing(t *testing.T) {
	for _, tc := range []struct {
		ci         string
		skip, fail bool
	}{{"", true, false}, {"false", true, false}, {"true", false, true}} {
		t.Setenv("CI", tc.ci)
		f := &fakeT{}
		Tool(f, "zonekit-no-such-tool", "apt-get install nothing")
		if f.skipped != tc.skip || f.failed != tc.fail {
			t.Errorf("CI=%q: skipped %v failed %v; want %v %v", tc.ci, f.skipped, f.failed, tc.skip, tc.fail)
		}
	}
	t.Setenv("CI", "true")
	f := &fakeT{}
	if p := Tool(f, "sh", "coreutils"); p == "" || f.failed || f.skipped {
		t.Errorf("Tool(sh) = %q, failed %v skipped %v", p, f.failed, f.skipped)
	}
}
