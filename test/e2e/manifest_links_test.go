package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestManifestsThroughSymlinks lays the config directory out as a
// Kubernetes ConfigMap mount does (each manifest a symlink through ..data
// to a timestamped directory), backs up through it, and checks that an
// entry named like a manifest that cannot be read is reported, not
// skipped: validate and --once exit 2 and name the file.
func TestManifestsThroughSymlinks(t *testing.T) {
	e := newEnv(t)
	makeTree(t, filepath.Join(e.root, "src"), 1<<20)
	body := strings.ReplaceAll(strings.ReplaceAll(webPolicy, "@RECIPIENT@", e.recip), "@ROOT@", e.root)

	// ConfigMap: ..2026_12_04_10_00_00.1/web.yaml, ..data -> that dir,
	// web.yaml -> ..data/web.yaml.
	stamp := filepath.Join(e.config, "..2026_12_04_10_00_00.1")
	if err := os.MkdirAll(stamp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stamp, "web.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	mustSymlink(t, filepath.Base(stamp), filepath.Join(e.config, "..data"))
	mustSymlink(t, "..data/web.yaml", filepath.Join(e.config, "web.yaml"))

	res := e.run("validate")
	res.mustCode(t, 0)
	statusDir := filepath.Join(e.root, "status") // a ConfigMap mount is read-only
	once := e.run("--once", "--status-dir", statusDir)
	once.mustCode(t, 0)
	snaps := e.snapshots("web")
	if len(snaps) != 1 {
		t.Fatalf("got %d snapshots through the symlinked manifest, want 1", len(snaps))
	}

	// Entries that look like manifests but cannot be read.
	mustSymlink(t, "loop-b.yaml", filepath.Join(e.config, "loop-a.yaml"))
	mustSymlink(t, "loop-a.yaml", filepath.Join(e.config, "loop-b.yaml"))
	mustSymlink(t, "gone.yaml", filepath.Join(e.config, "dangling.yaml"))
	if err := os.Mkdir(filepath.Join(e.config, "dir.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(e.config, "fifo.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	res = e.run("validate")
	res.mustCode(t, 2)
	for _, want := range []string{
		filepath.Join(e.config, "loop-a.yaml") + ": cannot read this manifest: its symlinks form a loop",
		filepath.Join(e.config, "dangling.yaml") + ": cannot read this manifest: it is a symlink to a missing file",
		filepath.Join(e.config, "dir.yaml") + ": cannot read this manifest: it is not a regular file (a directory)",
		filepath.Join(e.config, "fifo.yaml") + ": cannot read this manifest: it is not a regular file (a FIFO)",
	} {
		if !strings.Contains(res.stdout+res.stderr, want) {
			t.Errorf("validate does not say %q:\n%s%s", want, res.stdout, res.stderr)
		}
	}
	// The readable policy still runs beside them; the pass exits 2.
	once = e.run("--once", "--status-dir", statusDir)
	once.mustCode(t, 2)
}

func mustSymlink(t *testing.T, target, name string) {
	t.Helper()
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}
