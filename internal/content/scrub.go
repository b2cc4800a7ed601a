package content

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"zonekit/internal/atomicfile"
)

// damagedFile, in a package's directory, lists the fragments a scrub found
// damaged and removed: the package no longer counts as held (Has) until a
// pull from a peer replaced it whole.
const damagedFile = ".damaged"

// VerifyResult is what Verify found of one package.
type VerifyResult struct {
	Bytes   int64    // bytes read
	Damaged []string // fragments missing or not matching the manifest
}

// Verify re-reads every fragment of package id and checks its size and
// SHA-256 against the manifest, and the archive's SHA-256 over all of them,
// as a scrub does. It reads at most one buffer at a time and stops when
// ctx ends.
func (r *Repo) Verify(ctx context.Context, id string) (VerifyResult, error) {
	var res VerifyResult
	m, err := r.Manifest(id)
	if err != nil {
		return res, err
	}
	whole := sha256.New()
	buf := make([]byte, 1<<20)
	for _, fr := range m.Fragments {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		n, sum, err := hashFile(ctx, filepath.Join(r.PackageDir(id), fr.Name), whole, buf)
		res.Bytes += n
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			return res, fmt.Errorf("package %s: %w", id, err)
		}
		if err != nil || n != fr.Size || sum != fr.SHA256 {
			res.Damaged = append(res.Damaged, fr.Name)
		}
	}
	if len(res.Damaged) == 0 && m.SHA256 != "" && hex.EncodeToString(whole.Sum(nil)) != m.SHA256 {
		// Every fragment matches but the whole does not: the manifest
		// itself is wrong; nothing here can be trusted.
		for _, fr := range m.Fragments {
			res.Damaged = append(res.Damaged, fr.Name)
		}
	}
	return res, nil
}

// FileSHA256 reads the file at path and returns its SHA-256 (hex) and
// size; it stops when ctx ends. Its read buffer is reused across calls:
// callers hash thousands of small files (a restore's change report).
func FileSHA256(ctx context.Context, path string) (string, int64, error) {
	buf := hashBufs.Get().(*[]byte)
	defer hashBufs.Put(buf)
	n, sum, err := hashFile(ctx, path, io.Discard, *buf)
	return sum, n, err
}

var hashBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

func hashFile(ctx context.Context, path string, also io.Writer, buf []byte) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, "", err
		}
		k, err := f.Read(buf)
		if k > 0 {
			h.Write(buf[:k])
			also.Write(buf[:k])
			n += int64(k)
		}
		if err == io.EOF {
			return n, hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return n, "", err
		}
	}
}

// MarkDamaged removes the damaged fragments of package id and records
// them, so that the package is pulled again from a peer (Has is false
// until then) and no pull reuses them.
func (r *Repo) MarkDamaged(id string, fragments []string) error {
	m, err := r.Manifest(id)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, f := range m.Fragments {
		known[f.Name] = true
	}
	for _, name := range fragments {
		if !known[name] {
			return fmt.Errorf("package %s has no fragment %q", id, name)
		}
		if err := os.Remove(filepath.Join(r.PackageDir(id), name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("package %s: remove damaged fragment: %w", id, err)
		}
	}
	return atomicfile.WriteFile(filepath.Join(r.PackageDir(id), damagedFile), []byte(strings.Join(fragments, "\n")+"\n"), 0o644)
}

// Damaged lists the fragments of package id that a scrub found damaged
// (nil when none).
func (r *Repo) Damaged(id string) []string {
	data, err := os.ReadFile(filepath.Join(r.PackageDir(id), damagedFile))
	if err != nil {
		return nil
	}
	return strings.Fields(string(data))
}
