package spk

import (
	"archive/tar"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"zonekit/internal/atomicfile"
	"zonekit/internal/pki"
)

// A CPK is a zstd-compressed tar stream:
//
//	cpk/logic.json      the package (source normalised to JSON)
//	content/...         the files its steps take from the package
//	cpk/manifest.json   SHA-256 and size of every entry above
//	cpk/signature.json  optional: the zone CA's signature of the manifest
//
// The manifest's SHA-256 is the CPK's digest. The manifest comes after
// the content so that compiling streams (each file is hashed as it is
// written); a reader checks everything before anything runs.
const (
	logicName     = "cpk/logic.json"
	manifestName  = "cpk/manifest.json"
	signatureName = "cpk/signature.json"
	contentPrefix = "content/"
)

// Manifest lists the CPK's entries and their digests.
type Manifest struct {
	Format  int       `json:"cpk"`
	Name    string    `json:"name"`
	Version string    `json:"version,omitempty"`
	Created time.Time `json:"created"`
	Entries []Entry   `json:"entries"`
}

// Entry is one file of a CPK.
type Entry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Mode   uint32 `json:"mode"`
	SHA256 string `json:"sha256"`
}

// Signature is a zone CA's signature of a manifest.
type Signature struct {
	Algorithm string `json:"algorithm"` // x509 signature algorithm name
	Value     []byte `json:"value"`
	CAPEM     string `json:"ca_pem"`
}

// Signer signs a manifest digest (SHA-256) on behalf of a zone CA.
type Signer func(digest []byte) (Signature, error)

// CASigner signs with a CA key held here.
func CASigner(ca *pki.CA) Signer {
	return func(digest []byte) (Signature, error) {
		return SignDigest(ca, digest)
	}
}

// SignDigest signs a SHA-256 digest with the CA's key.
func SignDigest(ca *pki.CA, digest []byte) (Signature, error) {
	if len(digest) != sha256.Size {
		return Signature{}, fmt.Errorf("a manifest digest is %d bytes, not %d", sha256.Size, len(digest))
	}
	var alg x509.SignatureAlgorithm
	var opts crypto.SignerOpts = crypto.SHA256
	switch ca.Key.(type) {
	case *ecdsa.PrivateKey:
		alg = x509.ECDSAWithSHA256
	case *rsa.PrivateKey:
		alg = x509.SHA256WithRSA
	default:
		return Signature{}, fmt.Errorf("cannot sign with a %T", ca.Key)
	}
	sig, err := ca.Key.Sign(rand.Reader, digest, opts)
	if err != nil {
		return Signature{}, fmt.Errorf("sign the manifest: %w", err)
	}
	return Signature{Algorithm: alg.String(), Value: sig, CAPEM: string(pki.EncodeCertPEM(ca.Cert))}, nil
}

// CompileResult describes a compiled CPK.
type CompileResult struct {
	Name   string `json:"name"`
	Digest string `json:"sha256"` // of the manifest
	Files  int    `json:"files"`
	Bytes  int64  `json:"content_bytes"`
	Signed bool   `json:"signed"`
	Signer string `json:"signed_by,omitempty"`
}

// Compile checks the source, gathers the content its steps name (files
// or directories relative to baseDir) and writes the CPK to w. sign may
// be nil for an unsigned CPK.
func Compile(p *Package, baseDir string, w io.Writer, sign Signer, now time.Time) (*CompileResult, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	files, err := contentFiles(p, baseDir)
	if err != nil {
		return nil, err
	}
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(4<<20))
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	m := Manifest{Format: FormatVersion, Name: p.Name, Version: p.Version, Created: now.UTC()}
	logic, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	add := func(name string, r io.Reader, size int64, mode os.FileMode) error {
		h := sha256.New()
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: int64(mode.Perm()), Size: size, ModTime: now.UTC(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		n, err := io.Copy(io.MultiWriter(tw, h), r)
		if err != nil {
			return fmt.Errorf("add %s: %w", name, err)
		}
		if n != size {
			return fmt.Errorf("add %s: it changed size while being read", name)
		}
		m.Entries = append(m.Entries, Entry{Path: name, Size: size, Mode: uint32(mode.Perm()), SHA256: hex.EncodeToString(h.Sum(nil))})
		return nil
	}
	if err := add(logicName, bytes.NewReader(logic), int64(len(logic)), 0o644); err != nil {
		return nil, err
	}
	res := &CompileResult{Name: p.Name}
	for _, f := range files {
		fh, err := os.Open(f.disk)
		if err != nil {
			return nil, err
		}
		fi, err := fh.Stat()
		if err != nil {
			fh.Close()
			return nil, err
		}
		err = add(contentPrefix+f.rel, fh, fi.Size(), fi.Mode())
		fh.Close()
		if err != nil {
			return nil, err
		}
		res.Files++
		res.Bytes += fi.Size()
	}
	mdata, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := tw.WriteHeader(&tar.Header{Name: manifestName, Mode: 0o644, Size: int64(len(mdata)), ModTime: now.UTC(), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(mdata); err != nil {
		return nil, err
	}
	digest := sha256.Sum256(mdata)
	res.Digest = hex.EncodeToString(digest[:])
	if sign != nil {
		sig, err := sign(digest[:])
		if err != nil {
			return nil, err
		}
		sdata, err := json.MarshalIndent(sig, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Name: signatureName, Mode: 0o644, Size: int64(len(sdata)), ModTime: now.UTC(), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(sdata); err != nil {
			return nil, err
		}
		res.Signed = true
		if c, err := pki.ParseCertPEM([]byte(sig.CAPEM)); err == nil {
			res.Signer = c.Subject.String()
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return res, nil
}

// CompileFile compiles the SPK source at source (its content paths are
// relative to its directory) into the CPK file out, atomically.
func CompileFile(source, out string, sign Signer, now time.Time) (*CompileResult, error) {
	p, err := ReadSourceFile(source)
	if err != nil {
		return nil, err
	}
	f, err := atomicfile.New(out, 0o644)
	if err != nil {
		return nil, err
	}
	res, err := Compile(p, filepath.Dir(source), f, sign, now)
	if err != nil {
		f.Abort()
		return nil, err
	}
	return res, f.Commit()
}

type contentFile struct{ rel, disk string }

// contentFiles resolves every from_package path to the files under it.
func contentFiles(p *Package, baseDir string) ([]contentFile, error) {
	seen := map[string]bool{}
	var out []contentFile
	for _, c := range p.All() {
		for i, f := range c.Files {
			if f.FromPackage == "" {
				continue
			}
			root := filepath.Join(baseDir, filepath.FromSlash(f.FromPackage))
			fi, err := os.Lstat(root)
			if err != nil {
				return nil, stepErr(c.CompName, fmt.Sprintf("files step %d", i+1), "the package does not contain %s (looked for %s)", f.FromPackage, root)
			}
			if fi.Mode()&fs.ModeSymlink != 0 {
				return nil, stepErr(c.CompName, fmt.Sprintf("files step %d", i+1), "%s is a symbolic link: packages hold regular files", f.FromPackage)
			}
			err = filepath.WalkDir(root, func(pth string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if d.IsDir() {
					return nil
				}
				if !d.Type().IsRegular() {
					return fmt.Errorf("%s is not a regular file", pth)
				}
				rel, err := filepath.Rel(baseDir, pth)
				if err != nil {
					return err
				}
				rel = filepath.ToSlash(rel)
				if !seen[rel] {
					seen[rel] = true
					out = append(out, contentFile{rel: rel, disk: pth})
				}
				return nil
			})
			if err != nil {
				return nil, stepErr(c.CompName, fmt.Sprintf("files step %d", i+1), "%v", err)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out, nil
}

// Opened is a CPK whose entries have all been checked, unpacked into Dir.
type Opened struct {
	Package   *Package
	Manifest  Manifest
	Digest    string
	Signature *Signature
	SignedBy  *x509.Certificate // the CA that signed it, when it is signed
	Dir       string            // unpacked content/ lives under Dir/content
}

// Close removes the unpacked content.
func (o *Opened) Close() error { return os.RemoveAll(o.Dir) }

// ContentPath is where a from_package path was unpacked.
func (o *Opened) ContentPath(rel string) string {
	return filepath.Join(o.Dir, "content", filepath.FromSlash(rel))
}

// OpenOptions say how to check a CPK.
type OpenOptions struct {
	TempDir string              // where to unpack ("" for the system's)
	Trusted []*x509.Certificate // CAs whose signatures are accepted
	// RequireSignature refuses an unsigned CPK.
	RequireSignature bool
	// MaxContent bounds the content a CPK may hold (0: DefaultMaxContent).
	MaxContent int64
}

// DefaultMaxContent bounds a CPK's content unless the caller says otherwise.
const DefaultMaxContent = 8 << 30

// maxLogic bounds the logic and manifest entries, read into memory.
const maxLogic = 16 << 20

// maxEntries bounds the number of entries of a CPK.
const maxEntries = 1 << 20

// Open reads a CPK in two passes. The first reads only the logic, the
// manifest and the signature (content is skipped, never written) and
// checks them: the signature (which must come from a trusted CA), the
// logic's digest, the manifest's sizes against MaxContent and the free
// space. Only then does the second pass unpack the content into a
// private directory, writing no more than the manifest's size of each
// entry and checking each digest. Nothing is run here.
func Open(r io.ReadSeeker, o OpenOptions) (_ *Opened, err error) {
	limit := o.MaxContent
	if limit <= 0 {
		limit = DefaultMaxContent
	}
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	// Pass 1: logic, manifest, signature.
	var logic, mdata, sdata []byte
	sizes := map[string]int64{} // content entries as the tar headers declare them
	var skipped int64
	err = walkCPK(r, func(h *tar.Header, tr *tar.Reader) error {
		name := h.Name
		switch {
		case name == manifestName || name == signatureName || name == logicName:
			if mdata != nil && name != signatureName {
				return fmt.Errorf("CPK entry %q comes after the manifest", name)
			}
			if (name == logicName && logic != nil) || (name == signatureName && sdata != nil) {
				return fmt.Errorf("CPK entry %q appears twice", name)
			}
			if h.Size > maxLogic {
				return fmt.Errorf("CPK entry %s is too large", name)
			}
			data, err := io.ReadAll(io.LimitReader(tr, maxLogic+1))
			if err != nil {
				return fmt.Errorf("read %s: %w", name, err)
			}
			if len(data) > maxLogic {
				return fmt.Errorf("CPK entry %s is too large", name)
			}
			switch name {
			case manifestName:
				mdata = data
			case signatureName:
				sdata = data
			default:
				logic = data
			}
		case strings.HasPrefix(name, contentPrefix):
			if mdata != nil {
				return fmt.Errorf("CPK entry %q comes after the manifest", name)
			}
			rel := strings.TrimPrefix(name, contentPrefix)
			if err := checkContentPath(rel); err != nil || path.Clean(rel) != rel {
				return fmt.Errorf("CPK entry %q: unsafe path", name)
			}
			if _, dup := sizes[name]; dup {
				return fmt.Errorf("CPK entry %q appears twice", name)
			}
			if len(sizes) >= maxEntries {
				return fmt.Errorf("the CPK has more than %d entries", maxEntries)
			}
			// Skipping still decompresses: bound that work too.
			if skipped += h.Size; h.Size < 0 || skipped > limit {
				return fmt.Errorf("the CPK holds more than %d bytes of content", limit)
			}
			sizes[name] = h.Size
		default:
			return fmt.Errorf("CPK entry %q is not part of the format", name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if mdata == nil || logic == nil {
		return nil, errors.New("not a CPK or truncated: no manifest or logic")
	}
	var m Manifest
	if err := json.Unmarshal(mdata, &m); err != nil {
		return nil, fmt.Errorf("CPK manifest: %w", err)
	}
	if m.Format != FormatVersion {
		return nil, fmt.Errorf("CPK format %d is not supported (want %d)", m.Format, FormatVersion)
	}
	digest := sha256.Sum256(mdata)
	out := &Opened{Manifest: m, Digest: hex.EncodeToString(digest[:])}
	if sdata != nil {
		var sig Signature
		if err := json.Unmarshal(sdata, &sig); err != nil {
			return nil, fmt.Errorf("CPK signature: %w", err)
		}
		ca, err := verifySignature(sig, mdata, o.Trusted)
		if err != nil {
			return nil, err
		}
		out.Signature, out.SignedBy = &sig, ca
	} else if o.RequireSignature {
		return nil, errors.New("the CPK is not signed by the zone CA (compile it with 'zman spk-compile')")
	}
	// The manifest, now trusted as far as the signature goes, must list
	// exactly the archive's entries, with their sizes.
	want := map[string]Entry{}
	var total int64
	for _, e := range m.Entries {
		if _, dup := want[e.Path]; dup {
			return nil, fmt.Errorf("the CPK manifest lists %s twice", e.Path)
		}
		want[e.Path] = e
		if e.Path == logicName {
			continue
		}
		if e.Size < 0 || total+e.Size > limit || total+e.Size < total {
			return nil, fmt.Errorf("the CPK holds more than %d bytes of content", limit)
		}
		total += e.Size
		if size, ok := sizes[e.Path]; !ok || size != e.Size {
			return nil, fmt.Errorf("the CPK has been altered: %s does not match its manifest", e.Path)
		}
	}
	if len(m.Entries) != len(sizes)+1 {
		return nil, fmt.Errorf("the CPK has been altered: the manifest lists %d entries, the archive holds %d", len(m.Entries), len(sizes)+1)
	}
	lsum := sha256.Sum256(logic)
	if e, ok := want[logicName]; !ok || e.SHA256 != hex.EncodeToString(lsum[:]) || e.Size != int64(len(logic)) {
		return nil, fmt.Errorf("the CPK has been altered: %s does not match its manifest digest", logicName)
	}
	var p Package
	dec := json.NewDecoder(bytes.NewReader(logic))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("CPK logic: %w", err)
	}
	if err := p.Check(); err != nil {
		return nil, fmt.Errorf("CPK logic: %w", err)
	}
	if p.Name != m.Name {
		return nil, fmt.Errorf("the CPK has been altered: logic names %q, manifest %q", p.Name, m.Name)
	}
	// Every from_package path must be in the content.
	for _, c := range p.All() {
		for i, f := range c.Files {
			if f.FromPackage == "" {
				continue
			}
			if !inContent(want, f.FromPackage) {
				return nil, stepErr(c.CompName, fmt.Sprintf("files step %d", i+1), "the package does not contain %s", f.FromPackage)
			}
		}
	}
	dir, err := os.MkdirTemp(o.TempDir, "cpk-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	if total > 0 {
		if free, err := freeSpace(dir); err == nil && uint64(total) > free {
			return nil, fmt.Errorf("the CPK's %d bytes of content do not fit in %s (%d bytes free)", total, dir, free)
		}
	}
	// Pass 2: the content, bounded by the manifest's sizes.
	if err := os.Mkdir(filepath.Join(dir, "content"), 0o700); err != nil {
		return nil, err
	}
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return nil, err
	}
	done := 0
	err = walkCPK(r, func(h *tar.Header, tr *tar.Reader) error {
		if !strings.HasPrefix(h.Name, contentPrefix) {
			return nil
		}
		e, ok := want[h.Name]
		if !ok || h.Size != e.Size {
			return fmt.Errorf("the CPK changed while it was read: %s", h.Name)
		}
		rel := strings.TrimPrefix(h.Name, contentPrefix)
		if err := checkContentPath(rel); err != nil || path.Clean(rel) != rel {
			return fmt.Errorf("CPK entry %q: unsafe path", h.Name)
		}
		dst := filepath.Join(dir, "content", filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, os.FileMode(e.Mode).Perm()|0o600)
		if err != nil {
			return err
		}
		hh := sha256.New()
		n, err := io.Copy(io.MultiWriter(f, hh), io.LimitReader(tr, e.Size))
		cerr := f.Close()
		if err != nil {
			return fmt.Errorf("unpack %s: %w", h.Name, err)
		}
		if cerr != nil {
			return cerr
		}
		if n != e.Size || hex.EncodeToString(hh.Sum(nil)) != e.SHA256 {
			return fmt.Errorf("the CPK has been altered: %s does not match its manifest digest", h.Name)
		}
		// The manifest's mode exactly (the umask would narrow it), still
		// readable here: copies without mode: take it.
		if err := os.Chmod(dst, os.FileMode(e.Mode).Perm()|0o400); err != nil {
			return err
		}
		done++
		return nil
	})
	if err != nil {
		return nil, err
	}
	if done != len(sizes) {
		return nil, errors.New("the CPK changed while it was read")
	}
	out.Dir = dir
	out.Package = &p
	return out, nil
}

// inContent says whether a from_package path names a manifest entry or
// a directory holding some.
func inContent(want map[string]Entry, rel string) bool {
	if _, ok := want[contentPrefix+rel]; ok {
		return true
	}
	prefix := contentPrefix + strings.TrimSuffix(rel, "/") + "/"
	for p := range want {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// walkCPK calls fn for every entry of a CPK stream; every entry must be a
// regular file.
func walkCPK(r io.Reader, fn func(*tar.Header, *tar.Reader) error) error {
	zr, err := zstd.NewReader(r, zstd.WithDecoderMaxWindow(64<<20), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(256<<20))
	if err != nil {
		return fmt.Errorf("not a CPK: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("not a CPK or truncated: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			return fmt.Errorf("CPK entry %q is not a regular file", h.Name)
		}
		if err := fn(h, tr); err != nil {
			return err
		}
	}
}

func verifySignature(sig Signature, manifest []byte, trusted []*x509.Certificate) (*x509.Certificate, error) {
	signer, err := pki.ParseCertPEM([]byte(sig.CAPEM))
	if err != nil {
		return nil, fmt.Errorf("CPK signature: %w", err)
	}
	var ca *x509.Certificate
	for _, t := range trusted {
		if t.Equal(signer) {
			ca = t
		}
	}
	if ca == nil {
		return nil, fmt.Errorf("the CPK is signed by %s (SHA-256 %s), a CA this machine does not trust", signer.Subject, pki.Fingerprint(signer, "sha256"))
	}
	var alg x509.SignatureAlgorithm
	switch sig.Algorithm {
	case x509.ECDSAWithSHA256.String():
		alg = x509.ECDSAWithSHA256
	case x509.SHA256WithRSA.String():
		alg = x509.SHA256WithRSA
	default:
		return nil, fmt.Errorf("CPK signature algorithm %q is not supported", sig.Algorithm)
	}
	if err := ca.CheckSignature(alg, manifest, sig.Value); err != nil {
		return nil, fmt.Errorf("the CPK signature does not verify: %w", err)
	}
	return ca, nil
}
