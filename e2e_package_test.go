package zonekit_test

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"sync"
	"time"

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

// ocsserver ID INFO_LOC PACK_LOC VAR starts, inside the test process, the
// least of an OCS Inventory NG communication server that a real OCS agent
// needs to deploy package ID from a zone server: it answers the agent's
// PROLOG with the download configuration and the package's locations, and
// records the result the agent reports. $VAR gets its URL. ocswait reads
// the result.
func cmdOCSServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 4 {
		ts.Fatalf("usage: ocsserver ID INFO_LOC PACK_LOC VAR")
	}
	id, infoLoc, packLoc := args[0], args[1], args[2]
	results := make(chan string, 16)
	prolog := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<REPLY><OPTION><NAME>DOWNLOAD</NAME>`+
		`<PARAM TYPE="CONF" ON="1" FRAG_LATENCY="0" CYCLE_LATENCY="0" PERIOD_LATENCY="0" PERIOD_LENGTH="10" TIMEOUT="1" EXECUTION_TIMEOUT="5" />`+
		`<PARAM TYPE="PACK" ID="%s" INFO_LOC="%s" PACK_LOC="%s" CERT_PATH="INSTALL_PATH" CERT_FILE="INSTALL_PATH" SCHEDULE="" POSTCMD="" FORCE="0" />`+
		`</OPTION><RESPONSE>STOP</RESPONSE><PROLOG_FREQ>1</PROLOG_FREQ></REPLY>`, id, infoLoc, packLoc)
	mux := http.NewServeMux()
	mux.HandleFunc("/ocsinventory", func(w http.ResponseWriter, r *http.Request) {
		zr, err := zlib.NewReader(r.Body)
		if err != nil {
			http.Error(w, "not zlib", http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(zr)
		var reply string
		switch {
		case bytes.Contains(body, []byte("<QUERY>PROLOG</QUERY>")):
			reply = prolog
		case bytes.Contains(body, []byte(`QUERY="DOWNLOAD"`)):
			if m := regexp.MustCompile(`ERR="([^"]*)"`).FindSubmatch(body); m != nil {
				results <- string(m[1])
			}
			w.WriteHeader(http.StatusOK)
			return
		default:
			reply = `<?xml version="1.0" encoding="UTF-8"?><REPLY><RESPONSE>NO_ACCOUNT_UPDATE</RESPONSE></REPLY>`
		}
		var b bytes.Buffer
		zw := zlib.NewWriter(&b)
		zw.Write([]byte(reply))
		zw.Close()
		w.Header().Set("Content-Type", "application/x-compress")
		w.Write(b.Bytes())
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	ts.Defer(func() { srv.Close() })
	ts.Setenv(args[3], "http://"+ln.Addr().String()+"/ocsinventory")
	ocsResults.Store(ts, results)
}

// httpdir DIR VAR serves DIR over plain HTTP from the test process (a
// mirror on a plain web server, as sites run for fragments) until the
// script ends; $VAR gets its host:port.
func cmdHTTPDir(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: httpdir DIR VAR")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	srv := &http.Server{Handler: http.FileServer(http.Dir(ts.MkAbs(args[0])))}
	go srv.Serve(ln)
	ts.Defer(func() { srv.Close() })
	ts.Setenv(args[1], ln.Addr().String())
}

var ocsResults sync.Map // *testscript.TestScript -> chan string

// ocswait waits up to 120 seconds for the agent's result report and
// prints it.
func cmdOCSWait(ts *testscript.TestScript, neg bool, args []string) {
	v, ok := ocsResults.Load(ts)
	if neg || !ok {
		ts.Fatalf("usage: ocswait, after ocsserver")
	}
	select {
	case r := <-v.(chan string):
		fmt.Fprintln(ts.Stdout(), r)
	case <-time.After(120 * time.Second):
		ts.Fatalf("the OCS agent reported no result in 120s")
	}
}
