package server_test

// Benchmarks of the zone server in-process, over real TLS on a loopback
// listener (server.Serve, as zconfigure serve runs it). The whole-process
// numbers against the targets come from scripts/bench/run.sh.
//
//	go test ./internal/server/ -run XXX -bench . -benchtime 2s

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"zonekit/internal/api"
	"zonekit/internal/client"
	"zonekit/internal/config"
	"zonekit/internal/pki"
	"zonekit/internal/provision"
	"zonekit/internal/replica"
	"zonekit/internal/server"
	"zonekit/internal/store"
	"zonekit/internal/zone"
)

const (
	benchAdmin    = "Administrator"
	benchPassword = "bench-password-1"
	// benchAgents is how many agents register at once, as in the issue's
	// load test (50 concurrent zac clients).
	benchAgents = 50
)

type benchZone struct {
	url string
	ca  *x509.Certificate
}

// startBenchZone creates a zone in a temporary home and serves it on a
// loopback port until the benchmark ends.
func startBenchZone(b *testing.B) *benchZone {
	b.Helper()
	p := config.Paths{Home: b.TempDir()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if _, err := provision.NewZone(provision.NewZoneOptions{
		Paths: p, ZoneName: "bench", AdminName: benchAdmin, AdminPassword: benchPassword,
		DNSNames: []string{"localhost"}, IPs: []string{"127.0.0.1"}, Port: port,
		KeyType: pki.ECDSAP256, CAYears: 1,
	}); err != nil {
		ln.Close()
		b.Fatal(err)
	}
	cfg, err := config.LoadServer(p)
	if err != nil {
		ln.Close()
		b.Fatal(err)
	}
	st, err := store.Open(p.Store(), store.Options{})
	if err != nil {
		ln.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	srv, err := server.New(server.Options{Paths: p, Config: cfg, DB: zone.New(st, nil)})
	if err != nil {
		ln.Close()
		b.Fatal(err)
	}
	// As the daemon runs it: a one-voter replication cluster.
	node, err := replica.Start(replica.Options{Dir: p.Raft(), ID: cfg.ServerID, Advertise: srv.Advertise(), Store: st,
		TLSConfig: srv.PeerTLSConfig, Forward: srv.Forward, Bootstrap: true})
	if err != nil {
		ln.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() { node.Shutdown() })
	srv.SetReplica(node)
	node.WaitSingleLeader(5 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	loops := srv.Loops()
	go func() { done <- srv.Serve(ctx, ln, func() { server.StartLoops(ctx, loops) }) }()
	b.Cleanup(func() { // runs before the store is closed
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
		server.StopLoops(loops)
	})
	ca, err := pki.ReadCertFile(p.CACert())
	if err != nil {
		b.Fatal(err)
	}
	return &benchZone{url: fmt.Sprintf("https://127.0.0.1:%d", port), ca: ca}
}

// client returns a client with no connection yet, as a new zac or zman
// process has: its first request pays the TLS handshake.
func (z *benchZone) client(b *testing.B, auth func(*http.Request)) *client.Client {
	c, err := client.New(client.Options{BaseURL: z.url, CA: z.ca, Auth: auth})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkRegister registers devices from benchAgents goroutines at once.
// new-connection gives each registration its own TLS handshake, as every
// `zac register` process has; keep-alive reuses one connection per agent
// and so shows the cost of the registration itself (CSR check, signing,
// the batched store write).
func BenchmarkRegister(b *testing.B) {
	z := startBenchZone(b)
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		b.Fatal(err)
	}
	// One CSR serves every registration: the server names the device itself,
	// and making keys is the agent's cost, not the server's.
	csr, err := pki.NewCSR(key, "bench-host")
	if err != nil {
		b.Fatal(err)
	}
	req := api.RegisterRequest{CSR: string(csr), Hostname: "bench-host", OS: "linux"}
	for _, bc := range []struct {
		name    string
		newConn bool
	}{{"new-connection", true}, {"keep-alive", false}} {
		b.Run(bc.name, func(b *testing.B) {
			procs := runtime.GOMAXPROCS(0)
			b.SetParallelism((benchAgents + procs - 1) / procs)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				var c *client.Client
				for pb.Next() {
					if c == nil {
						c = z.client(b, nil)
					}
					var reg api.Registration
					if err := c.Post(ctx, api.Prefix+"/registrations", req, &reg); err != nil {
						b.Error(err)
						return
					}
					if reg.DeviceID == "" || reg.Certificate == "" {
						b.Errorf("registration without device id or certificate: %+v", reg)
						return
					}
					if bc.newConn {
						c.Close()
						c = nil
					}
				}
				if c != nil {
					c.Close()
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "registrations/s")
		})
	}
}

// BenchmarkServerList is zman server-list's request, one at a time, each on
// a new TLS connection as a zman process makes it (keep-alive: on one
// connection). The password case is the cached one: Argon2id is paid once
// before the timer starts.
func BenchmarkServerList(b *testing.B) {
	z := startBenchZone(b)
	ctx := context.Background()
	basic := client.Basic(benchAdmin, benchPassword)
	login := z.client(b, basic)
	var tok api.TokenResponse
	if err := login.Post(ctx, api.Prefix+"/sessions", nil, &tok); err != nil {
		b.Fatal(err)
	}
	login.Close()
	bearer := client.Bearer(tok.Token)

	for _, bc := range []struct {
		name    string
		auth    func(*http.Request)
		newConn bool
	}{
		{"password", basic, true},
		{"credential", bearer, true},
		{"credential-keep-alive", bearer, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var c *client.Client
			for b.Loop() {
				if c == nil {
					c = z.client(b, bc.auth)
				}
				var servers []api.Server
				if err := c.Get(ctx, api.Prefix+"/servers", &servers); err != nil {
					b.Fatal(err)
				}
				if len(servers) != 1 {
					b.Fatalf("%d servers listed, want 1", len(servers))
				}
				if bc.newConn {
					c.Close()
					c = nil
				}
			}
			if c != nil {
				c.Close()
			}
		})
	}
}
