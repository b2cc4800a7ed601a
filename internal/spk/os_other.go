//go:build !unix

package spk

import (
	"context"
	"os"
	"os/exec"
)

// ownerOf: files here have no numeric owner to keep.
func ownerOf(os.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }

// linkCount: unknown here, so snapshots are copies.
func linkCount(os.FileInfo) uint64 { return 0 }

// ownGroup: without process groups, cancel kills the step's process.
func ownGroup(*exec.Cmd) {}

// Lock creates the state directory; without flock, one run at a time is
// the administrator's to ensure (the agent's engine lock still holds).
func Lock(_ context.Context, dir string, _ func(string)) (func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return func() {}, nil
}
