package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// TestDeduplicatedRoundTripAndStockToolRecovery: a deduplicated policy
// backs up, restores and verifies through the agent; a second run stores
// almost nothing; docs/recover-dedup.sh rebuilds the tree from the
// destination with stock tools, in age and openssl mode.
func TestDeduplicatedRoundTripAndStockToolRecovery(t *testing.T) {
	for _, mode := range []string{"age", "openssl"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			makeTree(t, filepath.Join(e.root, "src"), 8<<20)
			enc, keyArg, ident := "age: {recipients: [\"@RECIPIENT@\"]}", []string{"-i", e.identity}, e.identity
			if mode == "openssl" {
				keyFile := filepath.Join(e.root, "keys", "openssl.key")
				e.run("keys", "generate", "--kind", "openssl", "--out", keyFile).mustCode(t, 0)
				enc, keyArg, ident = "openssl: {keyFile: "+keyFile+", iterations: 10000}", []string{"-p", keyFile}, keyFile
			}
			e.write("p.yaml", destination("disk", "@ROOT@/backups")+`---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: p
spec:
  schedule: "@daily"
  storage: deduplicated
  sources:
    - name: files
      files:
        paths: ["@ROOT@/src/www"]
  destinations: [disk]
  encryption:
    `+enc+`
`)
			e.run("--once").mustCode(t, 0)
			e.run("run", "p").mustCode(t, 0)
			snaps := e.snapshots("p")
			if len(snaps) != 2 {
				t.Fatalf("%d snapshots", len(snaps))
			}
			m := snaps[0].Manifest
			if m.FormatVersion != 2 || m.Storage != "deduplicated" || len(m.Objects) != 1 || len(m.Objects[0].Chunks) == 0 {
				t.Fatalf("manifest: format %d, storage %q, objects %+v", m.FormatVersion, m.Storage, m.Objects)
			}
			if least := min(m.NewBytes, snaps[1].Manifest.NewBytes); least > m.Objects[0].RawSize/4 {
				t.Errorf("the second run of an unchanged tree stored %d new bytes of %d", least, m.Objects[0].RawSize)
			}
			// The status sidecar says how the last run stored and what it saved.
			if lr := entry(t, e.status("p.yaml"), v1.KindBackupPolicy, "p").LastRun; lr == nil || len(lr.Sources) != 1 ||
				lr.Sources[0].Storage != v1.StorageDeduplicated || lr.Sources[0].StreamBytes != m.Objects[0].RawSize {
				t.Errorf("status sidecar's last run: %+v", lr)
			}
			src := filepath.Join(e.root, "src", "www")
			target := filepath.Join(e.root, "restore")
			e.run("restore", "p", "--target", target, "--identity", ident).mustCode(t, 0)
			compareTrees(t, src, filepath.Join(target, "files", strings.TrimPrefix(src, "/")))
			e.run("verify", "p", "--identity", ident).mustCode(t, 0)
			e.run("verify", "p", "--identity", ident, "--read-data").mustCode(t, 0)
			e.run("verify", "p", "--identity", ident, "--read-data-subset", "50%").mustCode(t, 0)

			script, _ := filepath.Abs("../../docs/recover-dedup.sh")
			manifest := filepath.Join(e.root, "backups", m.Host, "p", "files", m.ID, "manifest.json")
			manual := filepath.Join(e.root, "manual")
			args := append(append([]string{script}, keyArg...), filepath.Join(e.root, "backups"), manifest, manual)
			if out, err := exec.Command("sh", args...).CombinedOutput(); err != nil {
				t.Fatalf("recover-dedup.sh: %v\n%s", err, out)
			}
			compareTrees(t, src, filepath.Join(manual, "files", strings.TrimPrefix(src, "/")))
			if _, err := os.Stat(filepath.Join(manual, "files")); err != nil {
				t.Fatal(err)
			}
		})
	}
}
