// Command regfloor is the floor of a `zac register` process: what any
// registering agent must do, with nothing else linked. It makes a P-256
// key and a CSR, posts them to the zone server over TLS (trusting only
// the zone CA), checks the certificate it gets, and records the
// registration as zac does (agent.db in one bbolt transaction, then the
// key, certificate and CA files renamed into place). Its CPU against
// zac's shows what zac's command line, package set and agent code add.
//
//	regfloor --home DIR register --cacert ZONE-CA.pem https://HOST:PORT
//
// It takes zac's arguments, so register-load.sh -z runs it in zac's place.
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	bolt "go.etcd.io/bbolt"

	"zonekit/internal/api"
)

func main() {
	fs := flag.NewFlagSet("regfloor", flag.ExitOnError)
	home := fs.String("home", "", "agent home")
	caFile := fs.String("cacert", "", "zone CA certificate")
	// zac's order: --home DIR register --cacert FILE URL.
	fs.Parse(os.Args[1:])
	if fs.Arg(0) != "register" {
		fmt.Fprintln(os.Stderr, "usage: regfloor --home DIR register --cacert ZONE-CA.pem URL")
		os.Exit(2)
	}
	fs.Parse(fs.Args()[1:])
	if err := register(*home, *caFile, fs.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "regfloor:", err)
		os.Exit(1)
	}
}

func register(home, caFile, url string) error {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("%s: no certificate", caFile)
	}
	if err := os.MkdirAll(filepath.Join(home, "security"), 0o700); err != nil {
		return err
	}
	db, err := bolt.Open(filepath.Join(home, "agent.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: host}}, key)
	if err != nil {
		return err
	}
	body, err := json.Marshal(api.RegisterRequest{CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
		Hostname: host, OS: runtime.GOOS})
	if err != nil {
		return err
	}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Post(url+api.Prefix+"/registrations", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, data)
	}
	var reg api.Registration
	if err := json.Unmarshal(data, &reg); err != nil {
		return err
	}
	block, _ := pem.Decode([]byte(reg.Certificate))
	if block == nil {
		return fmt.Errorf("no certificate in the answer")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return err
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	state, err := json.Marshal(reg)
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("state"))
		if err != nil {
			return err
		}
		for k, v := range map[string][]byte{"state": state, "key": keyPEM, "cert": []byte(reg.Certificate), "ca": caPEM} {
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{"cacert.pem": caPEM, "security/device.key": keyPEM, "device.pem": []byte(reg.Certificate)} {
		path := filepath.Join(home, name)
		if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
			return err
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			return err
		}
	}
	fmt.Printf("Registered %s in zone %s as device %s.\n", host, reg.ZoneName, reg.DeviceID)
	return nil
}
