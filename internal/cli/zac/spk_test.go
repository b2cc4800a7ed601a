package zac

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"zonekit/internal/ui"
)

// fakePrompter answers from a map and records what it was asked.
type fakePrompter struct {
	answers map[string]string
	asked   []string
	secret  []string
}

func (f *fakePrompter) ask(m string) (string, error) {
	for k, v := range f.answers {
		if strings.HasPrefix(m, k) {
			return v, nil
		}
	}
	return "", errors.New("unexpected prompt " + m)
}
func (f *fakePrompter) Input(m, _ string) (string, error) {
	f.asked = append(f.asked, m)
	return f.ask(m)
}
func (f *fakePrompter) Password(m string) (string, error) {
	f.secret = append(f.secret, m)
	return f.ask(m)
}
func (f *fakePrompter) Select(string, []string, string) (string, error) { return "", errors.New("no") }
func (f *fakePrompter) Confirm(string, bool) (bool, error)              { return false, errors.New("no") }
func (f *fakePrompter) Menu(string, []string) (int, error)              { return 0, errors.New("no") }

// On a terminal, spk-process asks for required values nobody gave (the
// secret without echo), and built-in host variables need no declaring.
func TestSPKProcessPromptsForMissingValues(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	src := filepath.Join(dir, "p.spk")
	os.WriteFile(src, []byte(`spk: 1
name: prompt
variables:
  - {name: TREE, description: the tree, required: true}
  - {name: PW, required: true, secret: true}
  - {name: OUT, required: true}
components:
  - component: C
    pre_install:
      - run: [sh, -c, 'echo "$TREE $PW %HOST_OS%" > "$OUT"']
`), 0o644)
	cpk := filepath.Join(dir, "p.cpk")
	if _, err := CompileSPK(src, cpk, nil); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	fp := &fakePrompter{answers: map[string]string{"TREE": "ACME", "PW": "pw-secret-1"}}
	o := &SPKProcessOptions{Options: &Options{IO: &ui.IOStreams{In: strings.NewReader(""), Out: &buf, ErrOut: &buf, InTTY: true, ErrTTY: true}, Home: filepath.Join(dir, "home"), Output: "table"},
		Prompter: fp, StepTimeout: 1e10}
	if err := spkProcessRun(context.Background(), o, []string{cpk, "OUT=" + out}); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if got, _ := os.ReadFile(out); string(got) != "ACME pw-secret-1 linux\n" {
		t.Errorf("output %q", got)
	}
	if len(fp.asked) != 1 || !strings.Contains(fp.asked[0], "TREE, the tree (package prompt)") || len(fp.secret) != 1 {
		t.Errorf("asked %q, secretly %q", fp.asked, fp.secret)
	}
	if strings.Contains(buf.String(), "pw-secret-1") {
		t.Error("the secret was shown")
	}
	// Without a terminal: no prompt, the missing values are named.
	o.IO.InTTY = false
	err := spkProcessRun(context.Background(), o, []string{cpk, "OUT=" + out})
	if err == nil || !strings.Contains(err.Error(), "needs a value for PW, TREE") {
		t.Errorf("without a terminal: %v", err)
	}
}
