package zone_test

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"zonekit/internal/pki"
	"zonekit/internal/store"
	"zonekit/internal/zone"
)

// BenchmarkIssueServerCertificates measures the issue's target: ECDSA P-256
// server certificates (key, signature and store write) per second, on all
// cores, the store write going through bbolt's Batch as concurrent
// issuance does in the zone server.
func BenchmarkIssueServerCertificates(b *testing.B) {
	st, err := store.Open(filepath.Join(b.TempDir(), "zone.db"), store.Options{Create: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	db := zone.New(st, nil)
	t0 := time.Now()
	ca, err := pki.NewCA("Acme", pki.ECDSAP256, 10, t0)
	if err != nil {
		b.Fatal(err)
	}
	if err := db.Create(zone.Zone{ID: "z", Name: "Acme"}, zone.Server{ID: "s0", Name: "s0"}, zone.Admin{Name: "a"}); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	// Many issuers at once, as registrations and remints arrive: their
	// store writes share commits.
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			key, err := pki.GenerateKey(pki.ECDSAP256)
			if err != nil {
				b.Fatal(err)
			}
			name := fmt.Sprintf("server%d.acme.test", i)
			cert, err := ca.IssueServer(pki.ServerRequest{CommonName: name, PublicKey: key.Public()}, t0)
			if err != nil {
				b.Fatal(err)
			}
			err = db.ExecBatch("bench", zone.CmdServerSetCert, map[string]string{"id": "s0", "cert_pem": string(pki.EncodeCertPEM(cert))})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}

// BenchmarkGenerateRSAKeys compares RSA 2048 key generation for 8 servers
// one after the other and on every core (pki.GenerateKeys).
func BenchmarkGenerateRSAKeys(b *testing.B) {
	b.Run("sequential", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			for j := 0; j < 8; j++ {
				if _, err := pki.GenerateKey(pki.RSA2048); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := pki.GenerateKeys(pki.RSA2048, 8); err != nil {
				b.Fatal(err)
			}
		}
	})
}
