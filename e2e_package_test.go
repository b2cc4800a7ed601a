package zonekit_test

import (
	"os"
	"strconv"

	"github.com/rogpeppe/go-internal/testscript"

	"zonekit/internal/content"
)

// freeport VAR sets $VAR to a TCP port nothing listens on (a second
// listener, such as the plain-HTTP content port).
func cmdFreePort(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: freeport VAR")
	}
	port, err := freePort()
	ts.Check(err)
	ts.Setenv(args[0], strconv.Itoa(port))
}

// pack tar.gz|zip DIR FILE packs a directory as package-create does, for
// scripts that need an archive file (no zip tool is assumed).
func cmdPack(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: pack tar.gz|zip DIR FILE")
	}
	f, err := os.Create(ts.MkAbs(args[2]))
	ts.Check(err)
	defer f.Close()
	ts.Check(content.PackDir(ts.MkAbs(args[1]), args[0], f))
}
