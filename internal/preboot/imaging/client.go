package imaging

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"zonekit/internal/atomicfile"
	"zonekit/internal/errkind"
)

// Client is an imaging client: it sends images to an imaging service and
// fetches them back, checking each against its SHA-256.
type Client struct {
	Base string // https://host:port
	HTTP *http.Client
	Auth string // the Authorization header: an administrator's or a task token
}

// NewClient returns a client of the service at base; tlsCfg trusts the
// zone CA (ptls.ClientConfig), authz is sent as the Authorization header.
func NewClient(base string, tlsCfg *tls.Config, authz string) *Client {
	return &Client{Base: strings.TrimRight(base, "/"), Auth: authz, HTTP: &http.Client{
		// No overall timeout: images are large. Connecting and the
		// server's first answer are bounded.
		Transport: &http.Transport{Proxy: nil, ResponseHeaderTimeout: 60 * time.Second, TLSHandshakeTimeout: 10 * time.Second, TLSClientConfig: tlsCfg},
	}}
}

func (c *Client) do(req *http.Request) (*http.Response, error) {
	if c.Auth != "" {
		req.Header.Set("Authorization", c.Auth)
	}
	return c.HTTP.Do(req)
}

func (c *Client) url(name string) string { return c.Base + "/images/" + url.PathEscape(name) }

func answerError(resp *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	text := strings.TrimSpace(string(msg))
	switch resp.StatusCode {
	case http.StatusNotFound:
		return errkind.New(errkind.NotFound, "%s", text)
	case http.StatusConflict:
		return errkind.New(errkind.Exists, "%s (replace it with --replace)", text)
	case http.StatusUnprocessableEntity:
		return errkind.New(errkind.Invalid, "%s", text)
	case http.StatusUnauthorized, http.StatusForbidden:
		return errkind.New(errkind.Auth, "imaging service: %s", text)
	case http.StatusRequestEntityTooLarge:
		return errkind.New(errkind.Invalid, "imaging service: %s", text)
	}
	return fmt.Errorf("imaging service: %s: %s", resp.Status, text)
}

// Upload sends the file at path as image name.
func (c *Client) Upload(ctx context.Context, name, path string, replace bool) (Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return Image{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Image{}, fmt.Errorf("read %s: %w", path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Image{}, err
	}
	u := c.url(name)
	if replace {
		u += "?replace=1"
	}
	req, err := http.NewRequestWithContext(ctx, "PUT", u, io.NopCloser(f))
	if err != nil {
		return Image{}, err
	}
	req.ContentLength = n
	req.Header.Set(DigestHeader, sum)
	resp, err := c.do(req)
	if err != nil {
		return Image{}, errkind.Wrap(errkind.Unavailable, fmt.Errorf("upload %s: %w", name, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return Image{}, answerError(resp)
	}
	return Image{Name: name, Size: n, SHA256: sum}, nil
}

// Download fetches image name into path; the file appears only once its
// SHA-256 matches the one the service announced.
func (c *Client) Download(ctx context.Context, name, path string) (Image, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.url(name), nil)
	if err != nil {
		return Image{}, err
	}
	resp, err := c.do(req)
	if err != nil {
		return Image{}, errkind.Wrap(errkind.Unavailable, fmt.Errorf("download %s: %w", name, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Image{}, answerError(resp)
	}
	want := strings.ToLower(resp.Header.Get(DigestHeader))
	if len(want) != 64 {
		return Image{}, errkind.New(errkind.Invalid, "the imaging service sent no %s header", DigestHeader)
	}
	f, err := atomicfile.New(path, 0o644)
	if err != nil {
		return Image{}, err
	}
	defer f.Abort()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), resp.Body)
	if err != nil {
		return Image{}, fmt.Errorf("download %s: broken off after %d of %d bytes (the service's log says why): %w", name, n, resp.ContentLength, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return Image{}, errkind.New(errkind.Invalid, "integrity check failed for %s: received data has SHA-256 %s, the service announced %s; nothing written", name, got, want)
	}
	if err := f.Commit(); err != nil {
		return Image{}, err
	}
	return Image{Name: name, Size: n, SHA256: want}, nil
}

// List returns the images the service holds.
func (c *Client) List(ctx context.Context) ([]Image, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.Base+"/images", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, errkind.Wrap(errkind.Unavailable, fmt.Errorf("list images: %w", err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, answerError(resp)
	}
	var imgs []Image
	return imgs, json.NewDecoder(resp.Body).Decode(&imgs)
}
