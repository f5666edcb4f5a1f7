package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A policy whose manifest turns invalid stays visible everywhere as
// invalid, with its error and the fact that its last valid version keeps
// running; its snapshots can still be listed, verified and restored.
func TestInvalidPolicyStaysVisibleAndRestorable(t *testing.T) {
	breakages := map[string]struct{ manifest, problem string }{
		"schema error": {destination("disk", "@ROOT@/backups") + "---\n" + smallPolicy("p", "disk") + "  bogusField: 1\n",
			"p.yaml:23: BackupPolicy/p: spec.bogusField: unknown field"},
		"yaml syntax": {destination("disk", "@ROOT@/backups") + "---\n" + smallPolicy("p", "disk") + "  sources: [unclosed\n",
			"p.yaml:24: yaml: did not find expected ',' or ']'"},
	}
	for name, b := range breakages {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			smallTree(t, e)
			e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+smallPolicy("p", "disk"))
			e.run("--once").mustCode(t, 0)
			e.write("p.yaml", b.manifest)
			e.run("--once").mustCode(t, 2)

			r := e.run("status")
			r.mustCode(t, 2)
			if !regexp.MustCompile(`(?m)^p\s+INVALID\s+\d{4}-\d\d-\d\d \d\d:\d\d\s`).MatchString(r.stdout) {
				t.Errorf("status does not show p as INVALID with its last success:\n%s", r.stdout)
			}
			if !regexp.MustCompile(`(?m)^p: .*` + regexp.QuoteMeta(b.problem) + `.*; the agent keeps running the last valid version$`).MatchString(r.stdout) {
				t.Errorf("status does not explain p:\n%s", r.stdout)
			}

			r = e.run("status", "--json")
			r.mustCode(t, 2)
			var rows []struct {
				Policy             string   `json:"policy"`
				State              string   `json:"state"`
				Errors             []string `json:"errors"`
				RunsLastValid      bool     `json:"runsLastValid"`
				LastSuccessfulTime *string  `json:"lastSuccessfulTime"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
				t.Fatalf("status --json: %v\n%s", err, r.stdout)
			}
			if len(rows) != 1 || rows[0].Policy != "p" || rows[0].State != "INVALID" || !rows[0].RunsLastValid ||
				len(rows[0].Errors) != 1 || !strings.Contains(rows[0].Errors[0], b.problem) || rows[0].LastSuccessfulTime == nil {
				t.Errorf("status --json: %+v\n%s", rows, r.stdout)
			}

			if snaps := e.snapshots("p"); len(snaps) != 1 || snaps[0].Manifest.Policy != "p" {
				t.Errorf("snapshots p --json: %+v", snaps)
			}
			r = e.run("verify", "p", "--identity", e.identity)
			r.mustCode(t, 0)
			if !strings.HasPrefix(r.stdout, "ok   p/files ") {
				t.Errorf("verify p:\n%s", r.stdout)
			}
			target := filepath.Join(e.root, "restore")
			e.run("restore", "p", "--target", target, "--identity", e.identity).mustCode(t, 0)
			if got, err := os.ReadFile(filepath.Join(target, "files", e.root, "src", "d", "f.txt")); err != nil || string(got) != "data\n" {
				t.Errorf("restored file: %q, %v", got, err)
			}
		})
	}
}
