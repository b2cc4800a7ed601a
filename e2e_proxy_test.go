package zonekit_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdProxy starts a tiny HTTP proxy on loopback for the rest of the
// script: CONNECT tunnels and plain HTTP requests, to any host name, go
// to 127.0.0.1 on the port asked for (so a zone reached as zone1.example,
// a name nothing resolves, is reachable only through it). Each request's
// method and host go to LOGFILE; $VAR is its port: proxy VAR LOGFILE.
func cmdProxy(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: proxy VAR LOGFILE")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	logf, err := os.OpenFile(ts.MkAbs(args[1]), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	ts.Check(err)
	var mu sync.Mutex
	logLine := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(logf, format+"\n", a...)
	}
	local := func(hostport string) string {
		_, port, err := net.SplitHostPort(hostport)
		if err != nil {
			port = "80"
		}
		return net.JoinHostPort("127.0.0.1", port)
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				logLine("%s %s", req.Method, req.Host)
				up, err := net.Dial("tcp", local(req.Host))
				if err != nil {
					fmt.Fprintf(conn, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
					return
				}
				defer up.Close()
				if req.Method == http.MethodConnect {
					fmt.Fprintf(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
				} else {
					req.RequestURI = ""
					req.Header.Del("Proxy-Connection")
					req.Close = true
					if err := req.Write(up); err != nil {
						return
					}
				}
				go io.Copy(up, br)
				io.Copy(conn, up)
			}()
		}
	}()
	ts.Defer(func() { ln.Close(); logf.Close() })
	ts.Setenv(args[0], strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
}
