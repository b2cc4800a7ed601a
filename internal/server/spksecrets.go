package server

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"zonekit/internal/atomicfile"
	"zonekit/internal/errkind"
	"zonekit/internal/zone"
)

// Secret SPK values are sealed before they enter a command, so the raft
// log, the zone store, its snapshots and backups hold only ciphertext
// (AES-256-GCM, the variable's name as associated data). The key is the
// zone's SPK values key, a file of conf/security/spk-values/ on each
// Primary Server (so a backup carries it under its passphrase only). A
// sealed value names its key; a server without that key asks the
// zone's other servers for it over their mutual-TLS peer link. Only the
// device a value applies to receives it in clear, over its own TLS
// channel.

const sealPrefix = "v1:"

func (s *Server) spkKeyDir() string { return filepath.Join(s.opts.Paths.Security(), "spk-values") }

func keyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// spkKey returns the key with this id from the local keyring, or from a
// peer (saving it here); id "" asks for the key new values are sealed
// with, created when the zone has none here yet.
func (s *Server) spkKey(ctx context.Context, id string) (string, []byte, error) {
	dir := s.spkKeyDir()
	if id == "" {
		names, _ := filepath.Glob(filepath.Join(dir, "*.key"))
		sort.Strings(names)
		if len(names) > 0 {
			id = strings.TrimSuffix(filepath.Base(names[0]), ".key")
		} else {
			// A server of a cluster takes the zone's key from a peer
			// before it makes one: values stay readable by every server.
			if pid, key, err := s.spkKeyFromPeers(ctx, ""); err == nil {
				return pid, key, s.saveSPKKey(key)
			}
			key := make([]byte, 32)
			if _, err := rand.Read(key); err != nil {
				return "", nil, err
			}
			if err := s.saveSPKKey(key); err != nil {
				return "", nil, err
			}
			return keyID(key), key, nil
		}
	}
	if strings.ContainsAny(id, "/\\.") || id == "" {
		return "", nil, fmt.Errorf("bad SPK values key id %q", id)
	}
	data, err := os.ReadFile(filepath.Join(dir, id+".key"))
	if err == nil {
		key, err := hex.DecodeString(strings.TrimSpace(string(data)))
		if err != nil || keyID(key) != id {
			return "", nil, fmt.Errorf("SPK values key %s is damaged", id)
		}
		return id, key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", nil, err
	}
	_, key, err := s.spkKeyFromPeers(ctx, id)
	if err != nil {
		return "", nil, errkind.New(errkind.Unavailable, "the SPK values key %s is not on this server and no other zone server gave it: %v", id, err)
	}
	return id, key, s.saveSPKKey(key)
}

func (s *Server) saveSPKKey(key []byte) error {
	if err := os.MkdirAll(s.spkKeyDir(), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(s.spkKeyDir(), keyID(key)+".key"), []byte(hex.EncodeToString(key)+"\n"), 0o600)
}

// spkKeyFromPeers asks the zone's other servers for a key (id "": the
// one they seal with).
func (s *Server) spkKeyFromPeers(ctx context.Context, id string) (string, []byte, error) {
	servers, err := s.db.Servers()
	if err != nil {
		return "", nil, err
	}
	var last error = errors.New("no other zone server")
	for _, sv := range servers {
		if sv.ID == s.self.ID {
			continue
		}
		var out spkKeyAnswer
		if err := s.peerCall(ctx, peerAddr(sv), http.MethodGet, "/cluster/spk-values-key?id="+id, nil, &out); err != nil {
			last = err
			continue
		}
		key, err := base64.StdEncoding.DecodeString(out.Key)
		if err != nil || len(key) != 32 || (id != "" && keyID(key) != id) {
			last = fmt.Errorf("%s sent a key that is not %q", sv.Name, id)
			continue
		}
		return keyID(key), key, nil
	}
	return "", nil, last
}

type spkKeyAnswer struct {
	Key string `json:"key"`
}

// clusterSPKKey gives a peer (mutual TLS, a server of the zone) the SPK
// values key it asks for; never creates one.
func (s *Server) clusterSPKKey(w http.ResponseWriter, r *http.Request, p zone.Server) error {
	id := r.URL.Query().Get("id")
	if id == "" {
		names, _ := filepath.Glob(filepath.Join(s.spkKeyDir(), "*.key"))
		if len(names) == 0 {
			return errkind.New(errkind.NotFound, "no SPK values key on %s", s.self.Name)
		}
		sort.Strings(names)
		id = strings.TrimSuffix(filepath.Base(names[0]), ".key")
	}
	data, err := os.ReadFile(filepath.Join(s.spkKeyDir(), filepath.Base(id)+".key"))
	if err != nil {
		return errkind.New(errkind.NotFound, "no SPK values key %s on %s", id, s.self.Name)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || keyID(key) != id {
		return fmt.Errorf("SPK values key %s is damaged", id)
	}
	s.log.Info("SPK values key given to a peer", "peer", p.Name, "key", id)
	writeJSON(w, http.StatusOK, spkKeyAnswer{Key: base64.StdEncoding.EncodeToString(key)})
	return nil
}

// sealSPK encrypts a secret value for the store.
func (s *Server) sealSPK(ctx context.Context, name, value string) (string, error) {
	id, key, err := s.spkKey(ctx, "")
	if err != nil {
		return "", err
	}
	aead, err := newGCM(key)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	ct := aead.Seal(nonce, nonce, []byte(value), []byte(name))
	return sealPrefix + id + ":" + base64.StdEncoding.EncodeToString(ct), nil
}

// unsealSPK decrypts a sealed value.
func (s *Server) unsealSPK(ctx context.Context, name, sealed string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, sealPrefix)
	id, b64, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return "", fmt.Errorf("sealed value of %s: unknown format", name)
	}
	_, key, err := s.spkKey(ctx, id)
	if err != nil {
		return "", err
	}
	ct, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", fmt.Errorf("sealed value of %s: %w", name, err)
	}
	aead, err := newGCM(key)
	if err != nil {
		return "", err
	}
	if len(ct) < aead.NonceSize() {
		return "", fmt.Errorf("sealed value of %s is truncated", name)
	}
	pt, err := aead.Open(nil, ct[:aead.NonceSize()], ct[aead.NonceSize():], []byte(name))
	if err != nil {
		return "", fmt.Errorf("sealed value of %s does not open with key %s", name, id)
	}
	return string(pt), nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
