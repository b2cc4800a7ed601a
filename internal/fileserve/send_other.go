//go:build !linux || !(amd64 || arm64)

package fileserve

const rawSendfile = false

func (s *sender) step(fd uintptr) bool { panic("fileserve: no raw sendfile on this system") }
