package files

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// cutRecorder is an object writer offering drivers.Boundary; it records
// where the stream was cut.
type cutRecorder struct {
	bytes.Buffer
	cuts []int
}

func (c *cutRecorder) Boundary() error {
	c.cuts = append(c.cuts, c.Len())
	return nil
}

// TestBoundaryAtLargeFiles: with a writer offering Boundary, the stream is
// cut before a large file's header and before its data (both on 512-byte
// tar blocks), never around small files, and the stream is byte for byte
// the one written without cuts.
func TestBoundaryAtLargeFiles(t *testing.T) {
	dir := t.TempDir()
	big := make([]byte, boundaryMin+1000)
	rand.Read(big)
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("small"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.bin"), big, 0o644)
	os.WriteFile(filepath.Join(dir, "c.txt"), []byte("small too"), 0o644)
	spec := v1.FilesSource{Paths: []string{dir}}
	var plain bytes.Buffer
	if _, err := WriteTar(context.Background(), &plain, spec, Options{}); err != nil {
		t.Fatal(err)
	}
	var rec cutRecorder
	if _, err := WriteTar(context.Background(), &rec, spec, Options{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain.Bytes(), rec.Bytes()) {
		t.Fatalf("the stream with cuts (%d bytes) differs from the one without (%d bytes)", rec.Len(), plain.Len())
	}
	if len(rec.cuts) != 2 {
		t.Fatalf("cuts at %v, want 2 (before b.bin's header and before its data)", rec.cuts)
	}
	at := rec.cuts[1]
	if rec.cuts[0]%512 != 0 || at%512 != 0 || !bytes.Equal(rec.Bytes()[at:at+len(big)], big) {
		t.Errorf("cuts at %v: not at b.bin's header and data", rec.cuts)
	}
}
