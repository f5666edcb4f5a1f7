package observe

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

func TestFailureReasons(t *testing.T) {
	for _, c := range []struct {
		name string
		res  *v1.RunResult
		want string
	}{
		{"success", &v1.RunResult{Result: v1.ResultSucceeded}, ""},
		{"codec", &v1.RunResult{Result: v1.ResultFailed, Sources: []v1.SourceResult{{Result: v1.ResultFailed, Error: "age recipient: malformed"}}}, FailureConfig},
		{"unreachable", &v1.RunResult{Result: v1.ResultFailed,
			Sources:      []v1.SourceResult{{Result: v1.ResultFailed, Error: "no destination is usable"}},
			Destinations: []v1.DestinationResult{{Result: v1.ResultFailed, Error: "destination d is not usable: dial tcp: refused"}}}, FailureDestinationUnreachable},
		{"source", &v1.RunResult{Result: v1.ResultPartiallyFailed,
			Sources:      []v1.SourceResult{{Result: v1.ResultFailed, Error: "back up source db: pg_dump: connection refused"}, {Result: v1.ResultSucceeded}},
			Destinations: []v1.DestinationResult{{Result: v1.ResultSucceeded}}}, FailureSource},
		{"upload", &v1.RunResult{Result: v1.ResultFailed,
			Sources:      []v1.SourceResult{{Result: v1.ResultFailed, Error: "every destination failed: d: store x: disk full"}},
			Destinations: []v1.DestinationResult{{Result: v1.ResultFailed, Error: "source s: store x: disk full"}}}, FailureDestination},
		{"not supported", &v1.RunResult{Result: v1.ResultPartiallyFailed,
			Sources:      []v1.SourceResult{{Result: v1.ResultFailed, Error: "source s: driver mysql is not supported yet"}},
			Destinations: []v1.DestinationResult{{Result: v1.ResultSucceeded}}}, FailureNotSupported},
		{"cancelled", &v1.RunResult{Result: v1.ResultFailed,
			Sources:      []v1.SourceResult{{Result: v1.ResultFailed, Error: "back up source s: context canceled"}},
			Destinations: []v1.DestinationResult{{Result: v1.ResultSucceeded}}}, FailureCancelled},
		{"missing destination", &v1.RunResult{Result: v1.ResultFailed,
			Destinations: []v1.DestinationResult{{Result: v1.ResultFailed, Error: `destination "x" not found`}}}, FailureConfig},
	} {
		if got := strings.Join(FailureReasons(c.res), ","); got != c.want {
			t.Errorf("%s: reasons %q, want %q", c.name, got, c.want)
		}
	}
}

func policyWithSchedule(name, schedule string) *v1.BackupPolicy {
	p := &v1.BackupPolicy{}
	p.Metadata.Name = name
	p.Spec.Schedule = schedule
	p.Spec.Sources = []v1.Source{{Name: "site"}}
	p.Spec.Destinations = []string{"disk"}
	return p
}

func TestScheduleInterval(t *testing.T) {
	friday := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for schedule, want := range map[string]time.Duration{
		"@hourly":      time.Hour,
		"@daily":       24 * time.Hour,
		"@every 90m":   90 * time.Minute,
		"0 2 * * 1-5":  72 * time.Hour, // the weekend gap counts
		"0 */6 * * *":  6 * time.Hour,
		"not a cron":   0,
		"0 0 1 1 *":    366 * 24 * time.Hour, // 2028 is a leap year
		"30 1 * * 0,3": 4 * 24 * time.Hour,
	} {
		if got := ScheduleInterval(policyWithSchedule("p", schedule), friday); got != want {
			t.Errorf("ScheduleInterval(%q) = %s, want %s", schedule, got, want)
		}
	}
}

// scrape parses what the handler serves on /metrics.
func scrape(t *testing.T, h http.Handler) map[string]*familyView {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	return parseExposition(t, rec.Body.String())
}

type familyView struct {
	typ     string
	samples map[string]float64 // by sorted label pairs "k=v,k=v"
}

func parseExposition(t *testing.T, text string) map[string]*familyView {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse metrics: %v\n%s", err, text)
	}
	out := map[string]*familyView{}
	for name, f := range fams {
		fv := &familyView{typ: f.GetType().String(), samples: map[string]float64{}}
		for _, m := range f.Metric {
			var pairs []string
			for _, l := range m.Label {
				pairs = append(pairs, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(pairs)
			v := m.GetGauge().GetValue()
			if m.Counter != nil {
				v = m.GetCounter().GetValue()
			}
			fv.samples[strings.Join(pairs, ",")] = v
		}
		out[name] = fv
	}
	return out
}

func TestMetricsFollowTheRecordsAndForgetRemovedPolicies(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	m := NewMetrics("h", "test", func() time.Time { return now })
	web, db := policyWithSchedule("web", "@hourly"), policyWithSchedule("db", "@daily")
	lastOK := now.Add(-30 * time.Minute)
	failed := runWith(v1.ResultFailed, now.Add(-5*time.Minute))
	m.RunStarted("db")
	m.RunEnded("db", failed)
	m.Sync(map[string]PolicyView{
		"web": {Policy: web, LastSuccess: lastOK, LastAttempt: lastOK,
			LastRun: &v1.RunResult{Result: v1.ResultSucceeded, Duration: "2.5s", Sources: []v1.SourceResult{{Name: "site", Result: v1.ResultSucceeded, BytesRead: 1000, Bytes: 400, Files: 7, Duration: "2s"}}},
			Health:  Health{SourceSuccess: map[string]time.Time{"site": lastOK}}, Next: now.Add(30 * time.Minute)},
		"db": {Policy: db, LastAttempt: failed.StartTime, LastRun: failed,
			Health: Health{ConsecutiveFailures: 4, Failing: true}},
	}, map[string]DestinationView{"disk": {Checked: true, CheckTime: now, Error: "full"}}, 2)
	m.SetInventory("disk", "web", map[string]InventoryEntry{"site": {Snapshots: 3, Bytes: 1200, Newest: lastOK}})

	got := scrape(t, m.Handler(nil))
	for _, c := range []struct {
		name, labels string
		want         float64
	}{
		{"aegis_backup_last_success_timestamp_seconds", "policy=web", float64(lastOK.Unix())},
		{"aegis_backup_last_duration_seconds", "policy=web", 2.5},
		{"aegis_backup_last_run_success", "policy=web", 1},
		{"aegis_backup_last_run_success", "policy=db", 0},
		{"aegis_backup_consecutive_failures", "policy=db", 4},
		{"aegis_backup_schedule_interval_seconds", "policy=db", 86400},
		{"aegis_backup_next_run_timestamp_seconds", "policy=web", float64(now.Add(30 * time.Minute).Unix())},
		{"aegis_backup_runs_total", "policy=db,result=Failed", 1},
		{"aegis_backup_failures_total", "policy=db,reason=destination_unreachable", 1},
		{"aegis_source_last_read_bytes", "policy=web,source=site", 1000},
		{"aegis_source_last_written_bytes", "policy=web,source=site", 400},
		{"aegis_source_last_files", "policy=web,source=site", 7},
		{"aegis_source_last_success_timestamp_seconds", "policy=web,source=site", float64(lastOK.Unix())},
		{"aegis_destination_up", "destination=disk", 0},
		{"aegis_destination_snapshots", "destination=disk,policy=web,source=site", 3},
		{"aegis_destination_stored_bytes", "destination=disk,policy=web,source=site", 1200},
		{"aegis_agent_manifest_errors", "", 2},
		{"aegis_agent_policies", "", 2},
		{"aegis_agent_runs_in_progress", "", 0},
		{"aegis_agent_info", "host=h,version=test", 1},
	} {
		f := got[c.name]
		if f == nil {
			t.Errorf("%s missing", c.name)
			continue
		}
		if v, ok := f.samples[c.labels]; !ok || v != c.want {
			t.Errorf("%s{%s} = %v (present %v), want %v; samples %v", c.name, c.labels, v, ok, c.want, f.samples)
		}
	}
	if _, ok := got["aegis_backup_last_success_timestamp_seconds"].samples["policy=db"]; ok {
		t.Error("a policy that never succeeded has a last success time")
	}
	if got["aegis_backup_runs_total"].typ != "COUNTER" || got["aegis_backup_last_run_success"].typ != "GAUGE" {
		t.Error("wrong metric types")
	}
	if got["go_goroutines"] == nil || got["process_start_time_seconds"] == nil {
		t.Error("the endpoint lacks the runtime and process metrics")
	}

	// db goes away: every series of it goes too.
	m.Sync(map[string]PolicyView{"web": {Policy: web}}, nil, 0)
	for name, f := range scrape(t, m.Handler(nil)) {
		for labels := range f.samples {
			if strings.Contains(labels, "policy=db") {
				t.Errorf("%s{%s} outlived its policy", name, labels)
			}
		}
	}
}

func TestWriteTextfile(t *testing.T) {
	m := NewMetrics("h", "test", nil)
	m.RunStarted("web")
	m.RunEnded("web", runWith(v1.ResultSucceeded, time.Now()))
	path := filepath.Join(t.TempDir(), "aegis.prom")
	if err := m.WriteTextfile(path); err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fams := parseExposition(t, string(body))
	if fams["aegis_backup_runs_total"].samples["policy=web,result=Succeeded"] != 1 {
		t.Errorf("runs: %+v", fams["aegis_backup_runs_total"])
	}
	for name := range fams {
		if !strings.HasPrefix(name, "aegis_") {
			t.Errorf("the textfile holds %s, which would clash with node_exporter's own", name)
		}
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	m := NewMetrics("h", "test", func() time.Time { return now })
	h := m.Handler(nil)
	probe := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, _ := probe("/healthz"); code != 200 {
		t.Errorf("healthz at start: %d", code)
	}
	if code, body := probe("/readyz"); code != 503 || !strings.Contains(body, "no reconcile pass") {
		t.Errorf("readyz before a pass: %d %s", code, body)
	}
	m.PassDone(nil)
	if code, _ := probe("/readyz"); code != 200 {
		t.Errorf("readyz after a pass: %d", code)
	}
	m.PassDone(os.ErrPermission)
	if code, body := probe("/readyz"); code != 503 || !strings.Contains(body, "permission denied") {
		t.Errorf("readyz after a failed pass: %d %s", code, body)
	}
	now = now.Add(3 * time.Hour)
	if code, body := probe("/healthz"); code != 503 || !strings.Contains(body, "stuck") {
		t.Errorf("healthz after 3h without a pass: %d %s", code, body)
	}
}

// TestMonitoringFiles checks that the alert rules and the dashboard in
// manifests/monitoring parse and use only metrics the agent exports (a
// rule on a misspelt metric never fires). promtool checks the PromQL
// itself (hack/check-monitoring.sh).
func TestMonitoringFiles(t *testing.T) {
	m := NewMetrics("h", "test", nil)
	p := policyWithSchedule("web", "@hourly")
	m.RunStarted("web")
	m.RunEnded("web", runWith(v1.ResultFailed, time.Now()))
	m.Sync(map[string]PolicyView{"web": {Policy: p, Next: time.Now(),
		LastSuccess: time.Now(), LastAttempt: time.Now(),
		LastRun: &v1.RunResult{Result: v1.ResultSucceeded, Sources: []v1.SourceResult{{Name: "site"}}},
		Health:  Health{SourceSuccess: map[string]time.Time{"site": time.Now()}, SourceAttempt: map[string]time.Time{"site": time.Now()}}}},
		map[string]DestinationView{"disk": {Checked: true, CheckTime: time.Now()}}, 0)
	m.SetInventory("disk", "web", map[string]InventoryEntry{"site": {Snapshots: 1, Newest: time.Now()}})
	m.RetentionDeleted("web", "disk", 1)
	m.RetentionRun("web", v1.ResultSucceeded)
	m.Notification("web", "ping", true)
	m.AuditWriteFailed()
	drilled := &v1.DrillResult{Result: v1.ResultSucceeded, StartTime: time.Now(), Duration: "1s", MeasuredRTO: "2s"}
	p.Spec.Objectives = &v1.Objectives{RPO: "1h", RTO: "30m"}
	m.DrillEnded("web", drilled)
	m.SyncDrills(map[string]DrillView{"web": {Policy: p, LastDrill: drilled, LastSuccess: time.Now()}})
	m.PassDone(nil)
	known := map[string]bool{"up": true}
	fams := scrape(t, m.Handler(nil))
	for name := range fams {
		known[name] = true
	}

	dir := filepath.Join("..", "..", "manifests", "monitoring")
	metricName := regexp.MustCompile(`\b(aegis_[a-z_]+|process_[a-z_]+|go_[a-z_]+|up)\b`)
	check := func(file, text string) {
		for _, n := range metricName.FindAllString(text, -1) {
			if !known[n] {
				t.Errorf("%s uses %s, which the agent does not export", file, n)
			}
		}
	}

	rules, err := os.ReadFile(filepath.Join(dir, "aegis-alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rf struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(rules, &rf); err != nil {
		t.Fatalf("aegis-alerts.yaml: %v", err)
	}
	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			if r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %s lacks an expression, a severity or a summary", r.Alert)
			}
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("rule %s: for: %v", r.Alert, err)
				}
			}
			check("aegis-alerts.yaml "+r.Alert, r.Expr)
		}
	}
	for _, must := range []string{"AegisBackupTooOld", "AegisBackupRepeatedFailures"} {
		if !alerts[must] {
			t.Errorf("no %s alert", must)
		}
	}

	dash, err := os.ReadFile(filepath.Join(dir, "aegis-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := yaml.Unmarshal(dash, &d); err != nil {
		t.Fatalf("aegis-dashboard.json: %v", err)
	}
	if len(d.Panels) < 10 {
		t.Errorf("%d panels", len(d.Panels))
	}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			check("aegis-dashboard.json "+p.Title, q.Expr)
		}
	}
}

// TestDedupMetrics: a deduplicated run's new bytes and ratio reach the
// source's series; an archive run sets none.
func TestDedupMetrics(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	m := NewMetrics("h", "test", func() time.Time { return now })
	web := policyWithSchedule("web", "@hourly")
	run := &v1.RunResult{Result: v1.ResultSucceeded, Duration: "1s", StartTime: now, Sources: []v1.SourceResult{
		{Name: "site", Result: v1.ResultSucceeded, Storage: v1.StorageDeduplicated, StreamBytes: 1000, NewBytes: 250, DedupRatio: 4, Duration: "1s"},
		{Name: "old", Result: v1.ResultSucceeded, Storage: v1.StorageArchive, Duration: "1s"},
	}}
	m.RunEnded("web", run)
	m.Sync(map[string]PolicyView{"web": {Policy: web, LastRun: run}}, nil, 0)
	got := scrape(t, m.Handler(nil))
	for name, want := range map[string]float64{"aegis_source_last_new_bytes": 250, "aegis_source_last_dedup_ratio": 4, "aegis_source_new_bytes_total": 250} {
		if v, ok := got[name].samples["policy=web,source=site"]; !ok || v != want {
			t.Errorf("%s{site} = %v (present %v), want %v", name, v, ok, want)
		}
		if _, ok := got[name].samples["policy=web,source=old"]; ok {
			t.Errorf("%s set for an archive source", name)
		}
	}
}
