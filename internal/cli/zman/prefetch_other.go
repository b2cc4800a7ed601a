//go:build !linux

package zman

import "os"

func prefetch(*os.File) {}
