package spk

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkProcess1000 runs a package that copies 1,000 files and edits
// each (issue 19: under 2 s; the journal adds at most 10 %; check mode
// under 1 s), on a fresh target each time.
func BenchmarkProcess1000(b *testing.B) {
	const n = 1000
	var src strings.Builder
	src.WriteString("spk: 1\nname: many\nvariables: [{name: DEST, required: true}, {name: HOST, default: db2.example}]\n")
	src.WriteString("components:\n  - component: COPY\n    files: [{from_package: conf, to: \"%DEST%\"}]\n  - component: EDIT\n    edits:\n")
	files := map[string]string{}
	for i := 0; i < n; i++ {
		files[fmt.Sprintf("conf/app%d.conf", i)] = fmt.Sprintf("host=db1.example\nport=5432\n# file %d\n", i)
		fmt.Fprintf(&src, "      - {file: \"%%DEST%%/app%d.conf\", replace: {search: db1.example, with: \"%%HOST%%\"}}\n", i)
	}
	o := openTest(b, src.String(), files)
	for _, c := range []struct {
		name string
		p    func() *Processor
	}{
		{"run", func() *Processor { return &Processor{} }},
		{"run-without-journal", func() *Processor { return &Processor{noJournal: true} }},
		{"check", func() *Processor { return &Processor{DryRun: true} }},
	} {
		b.Run(c.name, func(b *testing.B) {
			state := b.TempDir()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				dest := filepath.Join(b.TempDir(), "dest")
				p := c.p()
				p.StateDir = state
				vals, err := Resolve(o.Package, Values{"DEST": dest})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				res, err := p.Run(context.Background(), o, vals)
				if err != nil || res.Changes != 2*n {
					b.Fatalf("%v, %d changes", err, res.Changes)
				}
				b.StopTimer()
				os.RemoveAll(filepath.Dir(dest))
				b.StartTimer()
			}
		})
	}
}

// BenchmarkJournal3000 is the journal's own cost in a run of 1,000
// copies and 1,000 edits (about 3,000 undo records: removes, restores
// and the begin/end lines), apart from the noise of the file system.
func BenchmarkJournal3000(b *testing.B) {
	dir := b.TempDir()
	for i := 0; i < b.N; i++ {
		d := filepath.Join(dir, fmt.Sprint(i))
		j, err := createJournal(d, journalBegin{Package: "many", Digest: strings.Repeat("ab", 32)})
		if err != nil {
			b.Fatal(err)
		}
		for k := 0; k < 3000; k++ {
			p := fmt.Sprintf("/srv/dest/app%d.conf", k)
			if err := j.write(journalLine{Undo: &undoRec{Op: "restore", Path: p, Kept: d + "/00001-app.conf", Meta: &fileMeta{Mode: 0o644, HasOwner: true}, What: "restore " + p}}); err != nil {
				b.Fatal(err)
			}
		}
		j.write(journalLine{End: "installed"})
		j.close()
		os.RemoveAll(d)
	}
}
