package e2e

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile/observe"
)

// treeListing lists every file under dir with its size and time, to prove
// that nothing changed there.
func treeListing(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("%s %d %d", p, fi.Size(), fi.ModTime().UnixNano()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// filesDrillEnv backs up a small site with a policy that has drills and
// objectives; the files' times lie before the snapshot.
func filesDrillEnv(t *testing.T) (*env, string) {
	e := newEnv(t)
	site := filepath.Join(e.root, "site")
	for name, body := range map[string]string{"index.html": "<h1>shop</h1>", "img/logo.png": strings.Repeat("\x89PNG", 5000)} {
		p := filepath.Join(site, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-time.Hour)
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	e.write("web.yaml", destination("disk", "@ROOT@/backups")+`---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: web
spec:
  schedule: "@daily"
  sources:
    - name: site
      files: {paths: [@ROOT@/site]}
  destinations: [disk]
  encryption:
    age:
      recipients: ["@RECIPIENT@"]
  drills: {schedule: "@weekly", sample: "100%", timeout: 10m}
  objectives: {rpo: 1h, rto: 30m}
`)
	e.run("--once").mustCode(t, 0)
	return e, site
}

func TestFilesDrill(t *testing.T) {
	e, _ := filesDrillEnv(t)
	before := treeListing(t, filepath.Join(e.root, "backups"))
	r := e.run("drill", "web")
	r.mustCode(t, 0)
	if !strings.HasPrefix(r.stdout, "policy web: drill Succeeded in ") ||
		!strings.Contains(r.stdout, "from disk: 2 files hashed, 2 restored (19.5 KiB) and read back, 2 compared with live files (0 changed since)") {
		t.Errorf("drill output:\n%s", r.stdout)
	}
	if after := treeListing(t, filepath.Join(e.root, "backups")); after != before {
		t.Errorf("the drill changed the destination:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if _, err := os.Stat(filepath.Join(e.state, "drills", "scratch")); !os.IsNotExist(err) {
		t.Errorf("scratch space left behind: %v", err)
	}
	st := entry(t, e.status("web.yaml"), v1.KindBackupPolicy, "web")
	if c := condition(t, st, v1.ConditionRestorable); c.Status != v1.ConditionTrue || c.Reason != "DrillSucceeded" {
		t.Errorf("Restorable %+v", c)
	}
	if c := condition(t, st, v1.ConditionObjectivesMet); c.Status != v1.ConditionTrue {
		t.Errorf("ObjectivesMet %+v", c)
	}
	if st.LastDrill == nil || st.LastDrill.Result != v1.ResultSucceeded || st.Objectives == nil || st.Objectives.AchievedRPO["site"] == "" || st.Objectives.MeasuredRTO == "" {
		t.Fatalf("status lastDrill %+v objectives %+v", st.LastDrill, st.Objectives)
	}
	checkDrillEvidence(t, e, st.LastDrill.Report)
}

// checkDrillEvidence checks the report, the status command and the audit
// line of a successful drill of policy web.
func checkDrillEvidence(t *testing.T, e *env, report string) {
	var rep struct {
		v1.DrillResult
		Files map[string][]struct {
			Path, SHA256, Live string
			Size               int64
		} `json:"files"`
	}
	body, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Files["site"]) != 2 || rep.Files["site"][0].Live != "same" {
		t.Errorf("report files %+v", rep.Files)
	}
	s := e.run("status")
	s.mustCode(t, 0)
	if !strings.Contains(s.stdout, "last restore drills:\n  web: Succeeded ") || !strings.Contains(s.stdout, "objectives True: achieved RPO and measured RTO within the objectives") {
		t.Errorf("status output:\n%s", s.stdout)
	}
	found := false
	for _, ev := range auditLines(t, e.logs) {
		found = found || ev.Action == observe.AuditDrillRun && ev.Outcome == observe.OutcomeSuccess && ev.Policy == "web" && ev.File == report
	}
	if !found {
		t.Errorf("no drill.run audit line")
	}
}

func TestFilesDrillFailsWhenSnapshotDiffersFromUnchangedFile(t *testing.T) {
	e, site := filesDrillEnv(t)
	p := filepath.Join(site, "index.html")
	if err := os.WriteFile(p, []byte("<h1>SHOP</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	r := e.run("drill", "web")
	r.mustCode(t, 1)
	if !strings.Contains(r.stdout, "policy web: drill Failed") || !strings.Contains(r.stdout, "file "+p+": the restored content") {
		t.Errorf("drill output:\n%s", r.stdout)
	}
	st := entry(t, e.status("web.yaml"), v1.KindBackupPolicy, "web")
	if c := condition(t, st, v1.ConditionRestorable); c.Status != v1.ConditionFalse || c.Reason != "DrillFailed" {
		t.Errorf("Restorable %+v", c)
	}
	e.run("drill", "nope").mustCode(t, 2)
	e.run("drill", "web", "--source", "nope").mustCode(t, 2)
}

func TestPostgresDrillCommand(t *testing.T) {
	s := requirePG(t)
	e := newEnv(t)
	db := fmt.Sprintf("aegis_drillsrc_%d", os.Getpid())
	cleanup := func() { s.psql("postgres", "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)") }
	cleanup()
	t.Cleanup(cleanup)
	s.psql("postgres", "CREATE DATABASE "+db)
	s.psql(db, "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 500);")
	e.write("db.yaml", pgPolicy(s, db, s.pwd)+`  drills:
    schedule: "@weekly"
    checks:
      - {sql: "select count(*) from orders", min: 1}
      - {sql: "select max(id) from orders", max: 10}
`)
	e.run("--once").mustCode(t, 0)
	r := e.run("drill", "db", "--json")
	r.mustCode(t, 1)
	var res v1.DrillResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	want := fmt.Sprintf(`source pg: database %s: check "select max(id) from orders": returned 500, want at most 10`, db)
	if res.Error != want {
		t.Errorf("error %q\nwant  %q", res.Error, want)
	}
	d := res.Sources[0].Databases
	if len(d) != 1 || d[0].Tables != 1 || d[0].Rows != 500 || d[0].ChecksPassed != 1 {
		t.Errorf("databases %+v", d)
	}
	if len(d) == 1 && s.psql("postgres", "SELECT count(*) FROM pg_database WHERE datname = '"+d[0].TemporaryDB+"'") != "0" {
		t.Errorf("temporary database %s left", d[0].TemporaryDB)
	}
}
