// Package spksecrets holds the zone's SPK values key ring on this
// server: it seals secret SPK values before they enter a command and
// opens them for the device they apply to, and gives the key to the
// zone's other servers (/api/v1/cluster/spk-values-key).
package spksecrets

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
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"zonekit/internal/api"
	"zonekit/internal/atomicfile"
	"zonekit/internal/errkind"
	"zonekit/internal/server/httpapi"
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

// Zone is what the key ring reads of the zone's state (*zone.DB).
type Zone interface {
	Servers() ([]zone.Server, error)
}

// Peers is how this server reaches the zone's other servers.
type Peers interface {
	// Call sends a JSON request to peer's API (path after /api/v1).
	Call(ctx context.Context, peer zone.Server, method, path string, in, out any) error
}

// Keyring is this server's SPK values keys.
type Keyring struct {
	// Dir holds the keys (conf/security/spk-values).
	Dir   string
	Zone  Zone
	Peers Peers
	// Self is this server.
	Self zone.Server
	Log  *slog.Logger
}

// Register mounts the peers' key route.
func (k *Keyring) Register(r httpapi.Routes) {
	r.Peer("GET "+api.Prefix+"/cluster/spk-values-key", k.clusterSPKKey)
}

func keyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// spkKey returns the key with this id from the local keyring, or from a
// peer (saving it here); id "" asks for the key new values are sealed
// with, created when the zone has none here yet.
func (k *Keyring) spkKey(ctx context.Context, id string) (string, []byte, error) {
	dir := k.Dir
	if id == "" {
		names, _ := filepath.Glob(filepath.Join(dir, "*.key"))
		sort.Strings(names)
		if len(names) > 0 {
			id = strings.TrimSuffix(filepath.Base(names[0]), ".key")
		} else {
			// A server of a cluster takes the zone's key from a peer
			// before it makes one: values stay readable by every server.
			if pid, key, err := k.spkKeyFromPeers(ctx, ""); err == nil {
				return pid, key, k.saveSPKKey(key)
			}
			key := make([]byte, 32)
			if _, err := rand.Read(key); err != nil {
				return "", nil, err
			}
			if err := k.saveSPKKey(key); err != nil {
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
	_, key, err := k.spkKeyFromPeers(ctx, id)
	if err != nil {
		return "", nil, errkind.New(errkind.Unavailable, "the SPK values key %s is not on this server and no other zone server gave it: %v", id, err)
	}
	return id, key, k.saveSPKKey(key)
}

func (k *Keyring) saveSPKKey(key []byte) error {
	if err := os.MkdirAll(k.Dir, 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(k.Dir, keyID(key)+".key"), []byte(hex.EncodeToString(key)+"\n"), 0o600)
}

// spkKeyFromPeers asks the zone's other servers for a key (id "": the
// one they seal with).
func (k *Keyring) spkKeyFromPeers(ctx context.Context, id string) (string, []byte, error) {
	servers, err := k.Zone.Servers()
	if err != nil {
		return "", nil, err
	}
	var last error = errors.New("no other zone server")
	for _, sv := range servers {
		if sv.ID == k.Self.ID {
			continue
		}
		var out spkKeyAnswer
		if err := k.Peers.Call(ctx, sv, http.MethodGet, "/cluster/spk-values-key?id="+id, nil, &out); err != nil {
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
func (k *Keyring) clusterSPKKey(w http.ResponseWriter, r *http.Request, p zone.Server) error {
	id := r.URL.Query().Get("id")
	if id == "" {
		names, _ := filepath.Glob(filepath.Join(k.Dir, "*.key"))
		if len(names) == 0 {
			return errkind.New(errkind.NotFound, "no SPK values key on %s", k.Self.Name)
		}
		sort.Strings(names)
		id = strings.TrimSuffix(filepath.Base(names[0]), ".key")
	}
	data, err := os.ReadFile(filepath.Join(k.Dir, filepath.Base(id)+".key"))
	if err != nil {
		return errkind.New(errkind.NotFound, "no SPK values key %s on %s", id, k.Self.Name)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || keyID(key) != id {
		return fmt.Errorf("SPK values key %s is damaged", id)
	}
	k.Log.Info("SPK values key given to a peer", "peer", p.Name, "key", id)
	httpapi.WriteJSON(w, http.StatusOK, spkKeyAnswer{Key: base64.StdEncoding.EncodeToString(key)})
	return nil
}

// Seal encrypts a secret value for the store.
func (k *Keyring) Seal(ctx context.Context, name, value string) (string, error) {
	id, key, err := k.spkKey(ctx, "")
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

// Unseal decrypts a sealed value.
func (k *Keyring) Unseal(ctx context.Context, name, sealed string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, sealPrefix)
	id, b64, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return "", fmt.Errorf("sealed value of %s: unknown format", name)
	}
	_, key, err := k.spkKey(ctx, id)
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
