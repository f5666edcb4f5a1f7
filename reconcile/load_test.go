package reconcile

import (
	"os"
	"path/filepath"
	"testing"
)

const lastValidManifest = `apiVersion: aegis.io/v1
kind: Destination
metadata: {name: disk}
spec:
  local: {path: /var/backups/aegis}
---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: web}
spec:
  schedule: "@daily"
  sources: [{name: site, files: {paths: [/var/www]}}]
  destinations: [disk]
  encryption: {none: true}
`

// TestLastValidVersionOutlivesAnInvalidEdit: once the state store saw a
// valid version, a broken edit (here a YAML syntax error, which leaves no
// object at all) still lets commands find the policy and its destination.
func TestLastValidVersionOutlivesAnInvalidEdit(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	file := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(file, []byte(lastValidManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(dir)
	if err != nil || len(cfg.Errors) > 0 {
		t.Fatalf("load: %v %v", err, cfg.Errors)
	}
	st, err := OpenStore(state)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Observe(cfg.Objects, cfg.IsValid); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(file, []byte("apiVersion: aegis.io/v1\nkind: [broken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plain, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if plain.Policy("web") != nil {
		t.Fatal("without the state, a file that does not parse still yields the policy")
	}
	cfg, err = LoadConfigWithState(dir, state)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Errors) == 0 {
		t.Error("the broken file is not reported")
	}
	p := cfg.Policy("web")
	if p == nil || len(p.Spec.Destinations) != 1 || p.Spec.Destinations[0] != "disk" {
		t.Fatalf("Policy(web) = %+v, want the last valid version", p)
	}
	d := cfg.AllDestinations()["disk"]
	if d == nil || d.Spec.Local == nil || d.Spec.Local.Path != "/var/backups/aegis" {
		t.Fatalf("destination disk = %+v, want the last valid version", d)
	}
	if lv := cfg.LastValid("BackupPolicy", "web"); lv == nil || lv.File != file {
		t.Errorf("LastValid = %+v, want the version read from %s", lv, file)
	}
}
