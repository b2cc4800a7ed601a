package agent

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"zonekit/internal/content"
)

// contentClient fetches info files and manifests over HTTPS, trusting the
// zone CAs of the trust store and nothing else.
func (a *Agent) contentClient() (*http.Client, error) {
	cas, err := a.TrustedCAs()
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil,
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}, nil
}

// fetchSmall GETs a small file; found is false on 404.
func fetchSmall(ctx context.Context, c *http.Client, url string, limit int64) (data []byte, found bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, false, final("ERR_BAD_PARAM", "%s: %v", url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		var verr *tls.CertificateVerificationError
		if errors.As(err, &verr) {
			// Not the zone's server: never trust what it says.
			return nil, false, final("ERR_DOWNLOAD_INFO", "%s: %v", url, err)
		}
		return nil, false, fmt.Errorf("%s: %w", url, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, false, nil
	case resp.StatusCode != http.StatusOK:
		return nil, false, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	data, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", url, err)
	}
	if int64(len(data)) > limit {
		return nil, false, final("ERR_DOWNLOAD_INFO", "%s is larger than %d bytes", url, limit)
	}
	return data, true, nil
}

// fetchInfo gets the info file over HTTPS and, beside it, the manifest
// with the SHA-256 of every fragment (an OCS server has none: the MD5 of
// the info file then guards the whole archive). A non-empty status is the
// package's final result.
func (e *engine) fetchInfo(ctx context.Context, p *LocalPackage) (string, error) {
	base := "https://" + p.InfoLocation + "/" + p.ID + "/"
	data, found, err := fetchSmall(ctx, e.info, base+content.InfoFile, 64<<10)
	if err != nil {
		return resultOf(err)
	}
	if !found {
		e.logf("package %s: %s%s not found", p.ID, base, content.InfoFile)
		return "ERR_BAD_ID", nil
	}
	info, err := content.ParseInfo(data)
	if err != nil {
		e.logf("package %s: %v", p.ID, err)
		return "ERR_BAD_PARAM", nil
	}
	if info.ID != p.ID {
		e.logf("package %s: the info file is for package %s", p.ID, info.ID)
		return "ERR_BAD_ID", nil
	}
	p.Info, p.Fragments = string(data), info.Frags
	mdata, found, err := fetchSmall(ctx, e.info, base+content.ManifestFile, 16<<20)
	if err != nil {
		return resultOf(err)
	}
	p.Manifest = nil
	if found {
		var m content.Manifest
		if err := json.Unmarshal(mdata, &m); err != nil || m.ID != p.ID || len(m.Fragments) != info.Frags || (info.Frags > 0 && m.MD5 != info.Digest) {
			e.logf("package %s: the manifest does not match the info file", p.ID)
			return "ERR_BAD_PARAM", nil
		}
		p.Manifest = &m
		if p.SHA256 == "" {
			p.SHA256 = m.SHA256
		}
	}
	e.logf("package %s: info fetched (%s, %d fragment(s), priority %d)", p.ID, info.Action, info.Frags, p.Priority)
	return "", nil
}

// fetchFragment gets fragment p.Have+1 into the package's directory. A
// partial file from an earlier attempt (a dropped connection, a killed
// agent) is continued with a Range request; a fragment whose SHA-256 is
// not the manifest's is thrown away and fetched again alone next time.
func (e *engine) fetchFragment(ctx context.Context, p *LocalPackage) (string, error) {
	n := p.Have + 1
	name := content.FragmentName(p.ID, n)
	dir := e.a.packageDir(p.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	done := filepath.Join(dir, name)
	part := done + ".part"
	want := int64(-1)
	var wantSum string
	if p.Manifest != nil {
		want, wantSum = p.Manifest.Fragments[n-1].Size, p.Manifest.Fragments[n-1].SHA256
	}
	f, err := os.OpenFile(part, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", err
	}
	if want >= 0 && have > want {
		f.Truncate(0)
		have, _ = f.Seek(0, io.SeekStart)
	}
	// The digest is taken as the bytes arrive; a partial file's bytes first.
	h := sha256.New()
	if have > 0 {
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, have)); err != nil {
			return "", err
		}
	}
	url := "http://" + p.PackLocation + "/" + p.ID + "/" + name
	if want < 0 || have < want {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return "ERR_BAD_PARAM", nil
		}
		if have > 0 {
			req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
		}
		resp, err := e.frags.Do(req)
		if err != nil {
			return "", fmt.Errorf("fragment %d/%d: %w", n, p.Fragments, err)
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			if have > 0 {
				// The server ignored the range: start over.
				if err := f.Truncate(0); err != nil {
					return "", err
				}
				f.Seek(0, io.SeekStart)
				h.Reset()
				have = 0
			}
		case http.StatusPartialContent:
			if !strings.HasPrefix(resp.Header.Get("Content-Range"), "bytes "+strconv.FormatInt(have, 10)+"-") {
				return "", fmt.Errorf("fragment %d/%d: %s answered the wrong range", n, p.Fragments, url)
			}
			e.logf("package %s: fragment %d/%d resumed at byte %d", p.ID, n, p.Fragments, have)
		case http.StatusRequestedRangeNotSatisfiable:
			// Whole already (no manifest to tell): check below.
		case http.StatusNotFound:
			e.logf("package %s: %s not found", p.ID, url)
			return "ERR_DOWNLOAD_PACK", nil
		default:
			return "", fmt.Errorf("fragment %d/%d: %s answered %s", n, p.Fragments, url, resp.Status)
		}
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			limit := int64(content.MaxFragmentSize)
			if want >= 0 {
				limit = want - have
				if resp.StatusCode == http.StatusOK {
					limit = want
				}
			}
			got, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, limit))
			have += got
			if err != nil {
				return "", fmt.Errorf("fragment %d/%d: %w", n, p.Fragments, err)
			}
		}
	}
	// No fsync (no download tool does one): fragments an earlier run
	// fetched are hashed again before use (engine.recheck, fragmentsOnDisk).
	if wantSum != "" {
		if got := have; got != want || hex.EncodeToString(h.Sum(nil)) != wantSum {
			f.Close()
			os.Remove(part)
			return "", fmt.Errorf("fragment %d/%d: bad SHA-256 (%d bytes); fetched again", n, p.Fragments, got)
		}
	}
	f.Close()
	if err := os.Rename(part, done); err != nil {
		return "", err
	}
	e.logf("package %s: fragment %d/%d in", p.ID, n, p.Fragments)
	return "", nil
}

// fragmentOK checks a fragment file in place against the manifest.
func fragmentOK(path string, want content.Fragment) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return err == nil && n == want.Size && hex.EncodeToString(h.Sum(nil)) == want.SHA256
}
