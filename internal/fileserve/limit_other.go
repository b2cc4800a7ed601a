//go:build !unix

package fileserve

func defaultMaxOpen() int { return 4096 }
