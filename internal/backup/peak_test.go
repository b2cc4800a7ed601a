package backup

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
)

func vmHWM() string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM") {
			return l
		}
	}
	return ""
}

func TestPeakMem(t *testing.T) {
	mode := os.Getenv("PEAK")
	if mode == "" {
		t.Skip()
	}
	files := benchFiles()
	files = append(files, memFile{"data/big", 0o600, testInfo.Created, randBytes(64 << 20)})
	src := memSources(files)
	t.Log("start", vmHWM())
	// Make the test data itself not count: drop it from the measure by reading it via the file system.
	dir := t.TempDir()
	switch mode {
	case "backup": // Pack then Encrypt in one process, as if zman and the server were one
		f, _ := os.Create(dir + "/b")
		w, err := Encrypt(f, testPass, DefaultKDF())
		if err != nil { t.Fatal(err) }
		if _, err := Pack(w, testInfo, src, nil); err != nil { t.Fatal(err) }
		w.Close(); f.Close()
	case "verify":
		var buf bytes.Buffer
		w, _ := EncryptWithChunkSize(&buf, testPass, DefaultKDF(), DefaultChunkSize)
		Pack(w, testInfo, src, nil); w.Close()
		os.WriteFile(dir+"/b", buf.Bytes(), 0o600)
		buf = bytes.Buffer{}
		t.Log("before", vmHWM())
		f, _ := os.Open(dir + "/b")
		r, err := Decrypt(f, testPass)
		if err != nil { t.Fatal(err) }
		if _, err := Verify(r, nil); err != nil { t.Fatal(err) }
	case "encrypt":
		f, _ := os.Create(dir + "/b")
		w, _ := Encrypt(f, testPass, DefaultKDF())
		io.Copy(w, io.LimitReader(zeroReader{}, 256<<20))
		w.Close()
	}
	t.Log("end", vmHWM())
}

type zeroReader struct{}
func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }
