// Command genman writes the man pages and shell completions of the four
// programs from their live command trees: go run ./scripts/genman docs
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"zonekit/internal/cli/cmdutil"
	"zonekit/internal/cli/pbserv"
	"zonekit/internal/cli/zac"
	"zonekit/internal/cli/zconfigure"
	"zonekit/internal/cli/zman"
	"zonekit/internal/ui"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: genman DOCS_DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "genman:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	io, _, _, _ := ui.Test()
	roots := []*cobra.Command{
		zman.NewRoot(zman.NewFactory(io)),
		zac.NewRoot(&zac.Options{IO: io}),
		zconfigure.NewRoot(&zconfigure.Options{IO: io}),
		pbserv.NewRoot(io),
	}
	manDir := filepath.Join(dir, "man")
	compDir := filepath.Join(dir, "completion")
	for _, d := range []string{manDir, compDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// A fixed date keeps regeneration deterministic.
	date := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, root := range roots {
		cmdutil.Prepare(root, io)
		root.DisableAutoGenTag = true
		header := &doc.GenManHeader{Title: root.Name(), Section: "1", Source: "zonekit", Manual: "zonekit manual", Date: &date}
		if err := doc.GenManTree(root, header, manDir); err != nil {
			return fmt.Errorf("man pages of %s: %w", root.Name(), err)
		}
		name := root.Name()
		if err := writeWith(filepath.Join(compDir, name+".bash"), func(f *os.File) error { return root.GenBashCompletionV2(f, true) }); err != nil {
			return err
		}
		if err := writeWith(filepath.Join(compDir, "_"+name), func(f *os.File) error { return root.GenZshCompletion(f) }); err != nil {
			return err
		}
		if err := writeWith(filepath.Join(compDir, name+".fish"), func(f *os.File) error { return root.GenFishCompletion(f, true) }); err != nil {
			return err
		}
	}
	return nil
}

func writeWith(path string, gen func(*os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := gen(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
