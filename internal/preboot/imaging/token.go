package imaging

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"zonekit/internal/atomicfile"
)

// A task token lets one machine do one thing with one image for a short
// while: restore (GET) or capture (PUT) the image its task names. The
// imaging service mints it into the machine's work, the policy service
// puts it in the boot script, and the imaging environment presents it as
// a Bearer token. It is an HMAC of its claims under a key that never
// leaves this server, so it needs no store and cannot be altered.
const tokenPrefix = "zkimg1."

// TokenTTL is how long a task token is good for.
const TokenTTL = time.Hour

// Claims are what a task token allows.
type Claims struct {
	MAC     string `json:"mac"`
	Action  string `json:"action"` // "image" (restore: GET) or "take-image" (capture: PUT)
	Image   string `json:"image"`
	Expires int64  `json:"exp"` // Unix seconds
}

// tokenKey is the HMAC key, made on first use and kept private.
type tokenKey []byte

// loadTokenKey reads the key at path, creating it when missing.
func loadTokenKey(path string) (tokenKey, error) {
	data, err := os.ReadFile(path)
	if err == nil && len(data) == 32 {
		return tokenKey(data), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read the task token key: %w", err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("write the task token key: %w", err)
	}
	return tokenKey(key), nil
}

func (k tokenKey) sign(payload string) string {
	m := hmac.New(sha256.New, k)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Mint returns a token for c.
func (k tokenKey) Mint(c Claims) string {
	data, _ := json.Marshal(c)
	payload := base64.RawURLEncoding.EncodeToString(data)
	return tokenPrefix + payload + "." + k.sign(payload)
}

// Verify checks a token's signature and expiry and returns its claims.
func (k tokenKey) Verify(tok string, now time.Time) (Claims, error) {
	var c Claims
	rest, ok := strings.CutPrefix(tok, tokenPrefix)
	if !ok {
		return c, errors.New("not a task token")
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(k.sign(payload))) {
		return c, errors.New("task token not valid")
	}
	data, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(data, &c) != nil {
		return c, errors.New("task token not valid")
	}
	if now.Unix() >= c.Expires {
		return c, errors.New("task token expired")
	}
	return c, nil
}
