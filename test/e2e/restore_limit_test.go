package e2e

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRestoreLimit: restore --limit caps the read rate. 3 MiB of random
// data at 1 MiB/s takes at least two seconds (a lower bound, which the
// machine's load cannot make fail), and a bad rate is a usage error.
func TestRestoreLimit(t *testing.T) {
	e := newEnv(t)
	data := make([]byte, 3<<20)
	rand.Read(data)
	os.MkdirAll(filepath.Join(e.root, "src"), 0o755)
	os.WriteFile(filepath.Join(e.root, "src", "data.bin"), data, 0o644)
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+smallPolicy("p", "disk"))
	e.run("run", "p").mustCode(t, 0)

	bad := e.run("restore", "p", "--target", filepath.Join(e.root, "r0"), "--identity", e.identity, "--limit", "fast")
	bad.mustCode(t, 2)
	if !strings.Contains(bad.stderr, "--limit") {
		t.Errorf("a bad --limit is not named:\n%s", bad.stderr)
	}

	start := time.Now()
	res := e.run("restore", "p", "--target", filepath.Join(e.root, "r1"), "--identity", e.identity, "--limit", "1MiB/s")
	took := time.Since(start)
	res.mustCode(t, 0)
	if took < 2*time.Second {
		t.Errorf("3 MiB restored in %v with --limit 1MiB/s, want at least 2s", took)
	}
	got, err := os.ReadFile(filepath.Join(e.root, "r1", "files", strings.TrimPrefix(e.root, "/"), "src", "data.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("restored bytes differ from the original (%v)", err)
	}
}
