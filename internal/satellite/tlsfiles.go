package satellite

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"zonekit/internal/pki"
)

// TLSFiles is the authentication satellite's TLS, read from files and read
// again when one of them changes, so that a certificate reminted or
// imported while the satellite runs (zac rsc, zac iac) and a new zone CA
// (a CA change reaching the trust store) take effect at the next
// handshake, without a restart.
type TLSFiles struct {
	CertFile string // leaf first, then its chain
	KeyFile  string
	CAFile   string // the device's trust store: the CAs agents' certificates must chain to
	Log      *slog.Logger

	mu     sync.Mutex
	stamp  [3]time.Time
	config *tls.Config
}

// Load reads the files; it fails when they are missing or do not match.
func (t *TLSFiles) Load() error {
	_, err := t.current()
	return err
}

// Config is the server side: the satellite's certificate, and agents'
// device certificates verified against the trust store when given (a
// registration comes without one).
func (t *TLSFiles) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return t.current()
		},
	}
}

func (t *TLSFiles) current() (*tls.Config, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var stamp [3]time.Time
	for i, f := range []string{t.CertFile, t.KeyFile, t.CAFile} {
		fi, err := os.Stat(f)
		if err != nil {
			if t.config != nil {
				// Being replaced: keep serving the last good pair.
				return t.config, nil
			}
			return nil, err
		}
		stamp[i] = fi.ModTime()
	}
	if t.config != nil && stamp == t.stamp {
		return t.config, nil
	}
	cfg, err := t.read()
	if err != nil {
		if t.config != nil {
			// Half-written by a change under way: keep serving the last good pair.
			if t.Log != nil {
				t.Log.Warn("satellite certificate", "err", err, "kept", "the previous one")
			}
			return t.config, nil
		}
		return nil, err
	}
	t.config, t.stamp = cfg, stamp
	return cfg, nil
}

func (t *TLSFiles) read() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("satellite certificate %s: %w", t.CertFile, err)
	}
	data, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, err
	}
	cas, err := pki.ParseCertsPEM(data)
	if err != nil {
		return nil, fmt.Errorf("trust store %s: %w", t.CAFile, err)
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}, nil
}
