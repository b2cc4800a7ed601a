package server_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"zonekit/internal/config"
	"zonekit/internal/content"
	"zonekit/internal/pki"
	"zonekit/internal/provision"
	"zonekit/internal/server"
	"zonekit/internal/store"
	"zonekit/internal/zone"
)

func zlibBody(s string) []byte {
	var b bytes.Buffer
	zw := zlib.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.Bytes()
}

func prologFor(agent string) []byte {
	return zlibBody(`<?xml version="1.0" encoding="UTF-8"?><REQUEST><DEVICEID>` + agent + `</DEVICEID><QUERY>PROLOG</QUERY></REQUEST>`)
}

// ocsZone is a zone with packages packages assigned to the OCS agent
// bench-2026-01-01-00-00-00, served by an in-process server.
func ocsZone(b *testing.B, packages int) (*server.Server, *zone.DB) {
	p := config.Paths{Home: b.TempDir()}
	if _, err := provision.NewZone(provision.NewZoneOptions{Paths: p, ZoneName: "bench", AdminName: benchAdmin, AdminPassword: benchPassword,
		DNSNames: []string{"localhost"}, IPs: []string{"127.0.0.1"}, Port: 1, KeyType: pki.ECDSAP256, CAYears: 1}); err != nil {
		b.Fatal(err)
	}
	cfg, err := config.LoadServer(p)
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(p.Store(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	db := zone.New(st, nil)
	srv, err := server.New(server.Options{Paths: p, Config: cfg, DB: db})
	if err != nil {
		b.Fatal(err)
	}
	// The agent's first PROLOG makes it a device.
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/ocsinventory", bytes.NewReader(prologFor("bench-2026-01-01-00-00-00"))))
	if rec.Code != 200 {
		b.Fatalf("first PROLOG: %d %s", rec.Code, rec.Body)
	}
	dev := zone.OCSDeviceID("bench-2026-01-01-00-00-00")
	for i := 0; i < packages; i++ {
		id := strconv.Itoa(1700000000 + i)
		must(b, db.Exec("a", zone.CmdPackageCreate, zone.Package{ID: id, Spec: content.Spec{Name: "p" + id, OS: "linux", Priority: 5, Action: "EXECUTE"}, Frags: 3}))
		must(b, db.Exec("a", zone.CmdPackageActivate, zone.PackageActivate{ID: id, Activation: zone.Activation{InfoLocation: "localhost:443/content", PackLocation: "localhost:80/content"}}))
		must(b, db.Exec("a", zone.CmdPackageAssign, zone.PackageDevices{Package: id, Devices: []string{dev}, Time: time.Now()}))
	}
	return srv, db
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkOCSProlog50 is the server time of a PROLOG for an agent with
// 50 assigned packages (target: under 5 ms).
func BenchmarkOCSProlog50(b *testing.B) {
	srv, _ := ocsZone(b, 50)
	body := prologFor("bench-2026-01-01-00-00-00")
	h := srv.Handler()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/ocsinventory", bytes.NewReader(body)))
		if rec.Code != 200 {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
		if i == 0 {
			zr, _ := zlib.NewReader(rec.Body)
			reply, _ := io.ReadAll(zr)
			if n := bytes.Count(reply, []byte(`TYPE="PACK"`)); n != 50 {
				b.Fatalf("%d packages offered", n)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/prolog")
}

// BenchmarkOCSProlog500Agents has 500 distinct agents send their PROLOG
// at once over loopback HTTP (the plain content listener), reports how
// many were answered and how long it took.
func BenchmarkOCSProlog500Agents(b *testing.B) {
	srv, _ := ocsZone(b, 5)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeContent(ctx, ln) }()
	b.Cleanup(func() { cancel(); <-done })
	url := "http://" + ln.Addr().String() + "/ocsinventory"
	tr := &http.Transport{MaxIdleConnsPerHost: 500}
	hc := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for a := 0; a < 500; a++ {
			wg.Add(1)
			go func(a int) {
				defer wg.Done()
				resp, err := hc.Post(url, "application/x-compress", bytes.NewReader(prologFor(fmt.Sprintf("agent%d-2026-01-01-00-00-00", a))))
				if err != nil {
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}(a)
		}
		wg.Wait()
		if ok != 500 {
			b.Fatalf("%d of 500 agents answered", ok)
		}
	}
	// The server's memory is measured as a separate process by
	// scripts/bench/ocs.sh; here client and server share one heap.
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/500-prologs")
}
