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
	"slices"
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
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: http.ProxyFromEnvironment,
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

// infoLocations and packLocations are where p's info file and fragments
// come from, in the order the zone gave (closest first); an older zone sends
// only the single locations.
func (p *LocalPackage) infoLocations() []string {
	if len(p.InfoLocations) > 0 {
		return p.InfoLocations
	}
	return []string{p.InfoLocation}
}

func (p *LocalPackage) packLocations() []string {
	if len(p.PackLocations) == 0 {
		return []string{p.PackLocation}
	}
	// The location that served the last fragment first, then the others in
	// the zone's order.
	if p.PackFrom == "" || p.PackFrom == p.PackLocations[0] || !slices.Contains(p.PackLocations, p.PackFrom) {
		return p.PackLocations
	}
	out := []string{p.PackFrom}
	for _, l := range p.PackLocations {
		if l != p.PackFrom {
			out = append(out, l)
		}
	}
	return out
}

// fetchInfo gets the info file over HTTPS and, beside it, the manifest
// with the SHA-256 of every fragment (an OCS server has none: the MD5 of
// the info file then guards the whole archive), from the first location
// that answers: a refused connection, a timeout, a 5xx, a 404 or a server
// that is not the zone's moves on to the next. A non-empty status is the
// package's final result.
func (e *engine) fetchInfo(ctx context.Context, p *LocalPackage) (string, error) {
	var errs []error
	missing, untrusted := 0, 0
	locs := p.infoLocations()
	for _, loc := range locs {
		res, found, err := e.fetchInfoFrom(ctx, p, loc)
		switch {
		case res != "":
			return res, nil
		case err == nil && found:
			return "", nil
		case err == nil:
			missing++
		default:
			var f *errFinal
			if errors.As(err, &f) {
				untrusted++
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
		}
		if len(locs) > 1 {
			e.logf("package %s: info not had from %s; trying the next location", p.ID, loc)
		}
	}
	switch {
	case missing == len(locs):
		return "ERR_BAD_ID", nil
	case untrusted+missing == len(locs):
		// Only servers the zone CA did not certify answered: never trust them.
		return "ERR_DOWNLOAD_INFO", nil
	}
	return "", errors.Join(errs...)
}

// fetchInfoFrom fetches the info file and manifest from one location.
// found is false when it has no info file for p.
func (e *engine) fetchInfoFrom(ctx context.Context, p *LocalPackage, loc string) (res string, found bool, err error) {
	base := "https://" + loc + "/" + p.ID + "/"
	data, found, err := fetchSmall(ctx, e.info, base+content.InfoFile, 64<<10)
	if err != nil {
		e.logf("package %s: %v", p.ID, err)
		return "", false, err
	}
	if !found {
		e.logf("package %s: %s%s not found", p.ID, base, content.InfoFile)
		return "", false, nil
	}
	info, err := content.ParseInfo(data)
	if err != nil {
		e.logf("package %s: %v", p.ID, err)
		return "ERR_BAD_PARAM", true, nil
	}
	if info.ID != p.ID {
		e.logf("package %s: the info file is for package %s", p.ID, info.ID)
		return "ERR_BAD_ID", true, nil
	}
	mdata, mfound, err := fetchSmall(ctx, e.info, base+content.ManifestFile, 16<<20)
	if err != nil {
		e.logf("package %s: %v", p.ID, err)
		return "", false, err
	}
	p.Info, p.Fragments = string(data), info.Frags
	p.Manifest = nil
	if mfound {
		var m content.Manifest
		if err := json.Unmarshal(mdata, &m); err != nil || m.ID != p.ID || len(m.Fragments) != info.Frags || (info.Frags > 0 && m.MD5 != info.Digest) {
			e.logf("package %s: the manifest does not match the info file", p.ID)
			return "ERR_BAD_PARAM", true, nil
		}
		p.Manifest = &m
		if p.SHA256 == "" {
			p.SHA256 = m.SHA256
		}
	}
	e.logf("package %s: info fetched from %s (%s, %d fragment(s), priority %d)", p.ID, loc, info.Action, info.Frags, p.Priority)
	return "", true, nil
}

// Digest failures: a location whose fragment fails its SHA-256 is asked
// again once at once (a transfer damaged on the way); a fragment that fails
// from every location is ERR_BAD_DIGEST at once, and one that fails at
// some while the others cannot be reached is ERR_BAD_DIGEST after
// maxDigestRounds turns. A fragment found nowhere (404) is retried at the
// package's next turns: a mirror may still be syncing; the download
// timeout ends it.
const (
	digestTries     = 2
	maxDigestRounds = 3
)

// fetchFragment gets fragment p.Have+1 into the package's directory from
// the first of p's locations that serves it, starting with the one that
// served the last fragment: a refused connection, a timeout, a 5xx, a 404,
// a transfer cut short or a fragment that fails its digest moves on to the
// next location, which continues the partial file with a Range request. A
// fragment whose SHA-256 is not the manifest's is thrown away.
func (e *engine) fetchFragment(ctx context.Context, p *LocalPackage) (string, error) {
	n := p.Have + 1
	locs := p.packLocations()
	var errs []error
	missing, bad := 0, 0
	for i, loc := range locs {
		var err error
		for try := 1; try <= digestTries; try++ {
			if err = e.fetchFragmentFrom(ctx, p, loc); !errors.Is(err, errBadDigest) {
				break
			}
		}
		if err == nil {
			if p.PackFrom != loc {
				if p.PackFrom != "" || i > 0 {
					e.logf("package %s: fragments now from %s", p.ID, loc)
				}
				p.PackFrom = loc
			}
			p.DigestRounds = 0
			return "", nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		switch {
		case errors.Is(err, errFragmentMissing):
			missing++
		case errors.Is(err, errBadDigest):
			bad++
		}
		errs = append(errs, err)
		if i+1 < len(locs) {
			e.logf("package %s: fragment %d/%d: %v; trying %s", p.ID, n, p.Fragments, err, locs[i+1])
		}
	}
	if bad > 0 {
		p.DigestRounds++
	}
	switch {
	case bad == len(locs):
		e.logf("package %s: fragment %d/%d fails its SHA-256 from every location; nothing runs", p.ID, n, p.Fragments)
		return "ERR_BAD_DIGEST", nil
	case bad > 0 && p.DigestRounds >= maxDigestRounds:
		e.logf("package %s: fragment %d/%d failed its SHA-256 in %d turns, and no other location served it", p.ID, n, p.Fragments, p.DigestRounds)
		return "ERR_BAD_DIGEST", nil
	case missing == len(locs):
		e.logf("package %s: fragment %d/%d found nowhere yet; asked again at the next turn", p.ID, n, p.Fragments)
	}
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return "", fmt.Errorf("fragment %d/%d: %s", n, p.Fragments, strings.Join(msgs, "; "))
}

var (
	errFragmentMissing = errors.New("not found")
	errBadDigest       = errors.New("bad SHA-256")
)

// fetchFragmentFrom gets fragment p.Have+1 from one location, continuing
// a partial file left by an earlier attempt (a dropped connection, a
// killed agent, another location) with a Range request.
func (e *engine) fetchFragmentFrom(ctx context.Context, p *LocalPackage, loc string) error {
	n := p.Have + 1
	name := content.FragmentName(p.ID, n)
	dir := e.a.packageDir(p.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
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
		return err
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if want >= 0 && have > want {
		f.Truncate(0)
		have, _ = f.Seek(0, io.SeekStart)
	}
	// The digest is taken as the bytes arrive; a partial file's bytes first.
	h := sha256.New()
	if have > 0 {
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, have)); err != nil {
			return err
		}
	}
	url := "http://" + loc + "/" + p.ID + "/" + name
	if want < 0 || have < want {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", url, err)
		}
		if have > 0 {
			req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
		}
		resp, err := e.frags.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			if have > 0 {
				// The server ignored the range: start over.
				if err := f.Truncate(0); err != nil {
					return err
				}
				f.Seek(0, io.SeekStart)
				h.Reset()
				have = 0
			}
		case http.StatusPartialContent:
			if !strings.HasPrefix(resp.Header.Get("Content-Range"), "bytes "+strconv.FormatInt(have, 10)+"-") {
				return fmt.Errorf("%s answered the wrong range", url)
			}
			e.logf("package %s: fragment %d/%d resumed at byte %d from %s", p.ID, n, p.Fragments, have, loc)
		case http.StatusRequestedRangeNotSatisfiable:
			// Whole already (no manifest to tell): check below.
		case http.StatusNotFound:
			return fmt.Errorf("%s: %w", url, errFragmentMissing)
		default:
			return fmt.Errorf("%s answered %s", url, resp.Status)
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
				return fmt.Errorf("%s: %w (%d bytes kept)", url, err, have)
			}
		}
	}
	// No fsync (no download tool does one): fragments an earlier run
	// fetched are hashed again before use (engine.recheck, fragmentsOnDisk).
	if wantSum != "" {
		if got := have; got != want || hex.EncodeToString(h.Sum(nil)) != wantSum {
			f.Close()
			os.Remove(part)
			return fmt.Errorf("%w from %s (%d bytes)", errBadDigest, loc, got)
		}
	}
	f.Close()
	if err := os.Rename(part, done); err != nil {
		return err
	}
	if len(p.PackLocations) > 1 {
		e.logf("package %s: fragment %d/%d in, from %s", p.ID, n, p.Fragments, loc)
	} else {
		e.logf("package %s: fragment %d/%d in", p.ID, n, p.Fragments)
	}
	return nil
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
