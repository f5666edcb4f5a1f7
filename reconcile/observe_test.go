package reconcile

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile/observe"
	"github.com/aegis-backup/aegis/reconcile/retention"
)

// obsEnv is an agent over temporary directories with a fake clock.
type obsEnv struct {
	t                       *testing.T
	root, config, logs, dst string
	now                     time.Time
	agent                   *Agent
}

func newObsEnv(t *testing.T) *obsEnv {
	t.Helper()
	root := t.TempDir()
	e := &obsEnv{t: t, root: root, config: filepath.Join(root, "config"), logs: filepath.Join(root, "logs"),
		dst: filepath.Join(root, "dest"), now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	os.MkdirAll(e.config, 0o755)
	os.MkdirAll(filepath.Join(root, "src"), 0o755)
	os.WriteFile(filepath.Join(root, "src", "f"), []byte("data"), 0o644)
	a, err := New(Options{ConfigDir: e.config, StateDir: filepath.Join(root, "state"), LogDir: e.logs, Host: "h",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	e.agent = a
	t.Cleanup(func() { a.Close() })
	return e
}

func (e *obsEnv) manifest(dest, notify string) {
	e.t.Helper()
	body := `apiVersion: aegis.io/v1
kind: Destination
metadata: {name: disk}
spec:
  local: {path: ` + dest + `}
---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: web}
spec:
  schedule: "@hourly"
  sources: [{name: site, files: {paths: [` + filepath.Join(e.root, "src") + `]}}]
  destinations: [disk]
  encryption: {none: true}
` + notify
	if err := os.WriteFile(filepath.Join(e.config, "web.yaml"), []byte(body), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *obsEnv) once() {
	e.t.Helper()
	if _, err := e.agent.Once(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.agent.obs.notifier.Wait()
}

func (e *obsEnv) audit() []observe.AuditEvent {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.logs, observe.AuditLogName))
	if err != nil && !os.IsNotExist(err) {
		e.t.Fatal(err)
	}
	var out []observe.AuditEvent
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var ev observe.AuditEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			e.t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, ev)
	}
	return out
}

func actions(evs []observe.AuditEvent) string {
	var s []string
	for _, ev := range evs {
		s = append(s, ev.Action+" "+ev.Object+" "+ev.Outcome)
	}
	return strings.Join(s, "\n")
}

func TestAuditOfTheAgent(t *testing.T) {
	e := newObsEnv(t)
	e.manifest(e.dst, "")
	e.once()
	want := "config.accepted BackupPolicy/web success\nconfig.accepted Destination/disk success\nbackup.published BackupPolicy/web success"
	if got := actions(e.audit()); got != want {
		t.Fatalf("audit after the first pass:\n%s\nwant:\n%s", got, want)
	}
	first := e.audit()[2]
	if first.Actor != observe.ActorAgent || first.Host != "h" || first.Snapshot == "" || first.Bytes == 0 ||
		strings.Join(first.Destinations, ",") != "disk" || strings.Join(first.Sources, ",") != "site" || !first.Time.Equal(e.now) {
		t.Errorf("backup line %+v", first)
	}

	// Nothing changed and nothing is due: nothing to audit.
	e.now = e.now.Add(time.Minute)
	e.once()
	if n := len(e.audit()); n != 3 {
		t.Errorf("%d lines after an idle pass:\n%s", n, actions(e.audit()))
	}

	// An edit that breaks the policy, then its removal.
	os.WriteFile(filepath.Join(e.config, "web.yaml"), []byte("apiVersion: aegis.io/v1\nkind: BackupPolicy\nmetadata: {name: web}\nspec: {schedule: nope}\n"), 0o644)
	e.once()
	evs := e.audit()[3:]
	if got := actions(evs); got != "config.rejected BackupPolicy/web failure\nconfig.removed Destination/disk success" {
		t.Errorf("after a broken edit:\n%s", got)
	}
	if !strings.Contains(evs[0].Message, "spec.schedule") {
		t.Errorf("rejection message %q", evs[0].Message)
	}
	os.Remove(filepath.Join(e.config, "web.yaml"))
	e.once()
	if got := actions(e.audit()[5:]); got != "config.removed BackupPolicy/web success" {
		t.Errorf("after removal:\n%s", got)
	}
}

func TestAuditOfRetention(t *testing.T) {
	e := newObsEnv(t)
	rep := &retention.PruneReport{Policy: "web", Host: "h", Rules: "keepLast 1", Time: e.now, Destinations: []*retention.DestinationPrune{
		{Destination: "disk", Result: v1.ResultSucceeded,
			Delete: []retention.SnapshotVerdict{
				{Source: "site", ID: "20260301T000000Z-aaaaaa", Size: 10, Deleted: true},
				{Source: "site", ID: "20260301T010000Z-bbbbbb", Size: 10, Deleted: false},
			},
			Leftovers: []retention.LeftoverVerdict{{Dir: "h/web/site/20260201T000000Z-cccccc/", Removed: true, Reason: "unfinished upload older than 24h0m0s"}},
		},
		{Destination: "offsite", Result: v1.ResultFailed, Message: "listing failed"},
	}}
	e.agent.retentionDone("web", rep)
	want := "snapshot.deleted Snapshot/h/web/site/20260301T000000Z-aaaaaa success\n" +
		"snapshot.deleted Leftover/h/web/site/20260201T000000Z-cccccc success\n" +
		"snapshot.deleted BackupPolicy/web failure"
	if got := actions(e.audit()); got != want {
		t.Errorf("audit:\n%s\nwant:\n%s", got, want)
	}
	if v := metricValue(t, e.agent.Metrics(), "aegis_retention_deleted_snapshots_total", "disk", "web"); v != 1 {
		t.Errorf("deletions counted %v", v)
	}
	rep.DryRun = true
	e.agent.retentionDone("web", rep)
	if n := len(e.audit()); n != 3 {
		t.Errorf("a dry run was audited")
	}
}

func TestNotificationsOfTheAgent(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	e := newObsEnv(t)
	key := secretFile(t, "k3y\n", 0o600)
	notify := "  notify:\n    ping: " + srv.URL + "/ping/uuid\n    webhooks: [{url: " + srv.URL + "/hook, secretFile: " + key + "}]\n"
	broken := filepath.Join(e.root, "file")
	os.WriteFile(broken, nil, 0o644) // a destination path under a file fails its check
	e.manifest(filepath.Join(broken, "dest"), notify)

	// Three failed passes (--once retries at once): pings every time, one
	// webhook.
	for range 3 {
		e.once()
		e.now = e.now.Add(10 * time.Minute)
	}
	var paths []string
	for _, r := range rec.got() {
		paths = append(paths, r.path)
	}
	want := "/ping/uuid/start /ping/uuid/fail /hook /ping/uuid/start /ping/uuid/fail /ping/uuid/start /ping/uuid/fail"
	if got := strings.Join(paths, " "); got != want {
		t.Fatalf("requests:\n%s\nwant:\n%s", got, want)
	}
	hook := rec.got()[2]
	var body observe.WebhookBody
	json.Unmarshal(hook.body, &body)
	if body.Event != observe.EventFailure || body.ConsecutiveFailures != 1 || hook.headers.Get(observe.SignatureHeader) != observe.Sign([]byte("k3y"), hook.body) {
		t.Errorf("webhook %+v %v", body, hook.headers)
	}
	if v := metricValue(t, e.agent.Metrics(), "aegis_backup_consecutive_failures", "web"); v != 3 {
		t.Errorf("consecutive failures %v", v)
	}

	// Fixed: one recovery.
	e.manifest(e.dst, notify)
	e.once()
	reqs := rec.got()[7:]
	paths = nil
	for _, r := range reqs {
		paths = append(paths, r.path)
	}
	if got := strings.Join(paths, " "); got != "/ping/uuid/start /ping/uuid /hook" {
		t.Fatalf("after the fix: %s", got)
	}
	json.Unmarshal(reqs[2].body, &body)
	if body.Event != observe.EventRecovery || body.Result != v1.ResultSucceeded {
		t.Errorf("recovery body %+v", body)
	}

	// The next pass's status shows each channel's last delivery.
	e.once()
	sf, err := ReadStatusFile(StatusPath(filepath.Join(e.config, "web.yaml"), ""))
	if err != nil {
		t.Fatal(err)
	}
	var st v1.ObjectStatus
	for _, it := range sf.Items {
		if it.Kind == v1.KindBackupPolicy {
			st = it.Status
		}
	}
	var got []string
	for _, d := range st.Notifications {
		got = append(got, d.Channel+"="+d.Result+" "+d.Target)
	}
	want = "ping=Delivered " + srv.URL + "/… webhook[0]=Delivered " + srv.URL + "/…"
	if strings.Join(got, " ") != want {
		t.Errorf("status notifications %q, want %q", strings.Join(got, " "), want)
	}
}

// metricValue reads the counter or gauge name whose label values are
// labels (in the order the registry reports them), as a scrape would.
func metricValue(t *testing.T, m *observe.Metrics, name string, labels ...string) float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, mt := range f.GetMetric() {
			lp := mt.GetLabel()
			if len(lp) != len(labels) {
				continue
			}
			for i, l := range lp {
				if l.GetValue() != labels[i] {
					continue next
				}
			}
			if mt.Counter != nil {
				return mt.Counter.GetValue()
			}
			return mt.Gauge.GetValue()
		}
	}
	t.Fatalf("metric %s%q not found", name, labels)
	return 0
}

// recorder is a webhook receiver that answers with the given statuses in
// turn (200 once they run out) and keeps what it got.
type recorder struct {
	mu       sync.Mutex
	statuses []int
	reqs     []recorded
}

type recorded struct {
	path    string
	body    []byte
	headers http.Header
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, recorded{path: req.URL.Path, body: body, headers: req.Header.Clone()})
	status := http.StatusOK
	if len(r.statuses) > 0 {
		status, r.statuses = r.statuses[0], r.statuses[1:]
	}
	w.WriteHeader(status)
}

func (r *recorder) got() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

func secretFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hook.secret")
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}
