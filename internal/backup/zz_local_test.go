package backup

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestZZLocalUnpack(t *testing.T) {
	zbk := os.Getenv("ZBK")
	if zbk == "" {
		t.Skip()
	}
	f, err := os.Open(zbk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t0 := time.Now()
	r, err := Decrypt(f, []byte("a long backup passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	staging := filepath.Join("/tmp/rb/w", "staging")
	os.RemoveAll(staging)
	os.Mkdir(staging, 0o700)
	if _, err := Unpack(r, staging, nil); err != nil {
		t.Fatal(err)
	}
	t2 := time.Now()
	d, _ := os.Open(staging)
	unix.Syncfs(int(d.Fd()))
	t3 := time.Now()
	t.Logf("kdf %v unpack %v sync %v total %v", t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), t3.Sub(t1))
}
