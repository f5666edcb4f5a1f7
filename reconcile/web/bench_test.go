package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/local"
	"github.com/aegis-backup/aegis/reconcile"
)

// benchServer is a console over a config directory of n policies (every
// fifth one failing) with their status sidecar, and a destination whose
// fleet has hosts hosts of sources sources each.
func benchServer(b *testing.B, n, hosts, sources int) (*Server, *http.Request) {
	b.Helper()
	dir := b.TempDir()
	conf, dest := filepath.Join(dir, "conf"), filepath.Join(dir, "dest")
	for _, d := range []string{conf, dest, filepath.Join(dir, "data")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	var m strings.Builder
	fmt.Fprintf(&m, "apiVersion: aegis.io/v1\nkind: Destination\nmetadata: {name: disk}\nspec:\n  local: {path: %s}\n", dest)
	now := time.Now().UTC()
	sf := &v1.StatusFile{}
	for i := range n {
		name := fmt.Sprintf("policy-%04d", i)
		fmt.Fprintf(&m, "---\napiVersion: aegis.io/v1\nkind: BackupPolicy\nmetadata: {name: %s}\nspec:\n  schedule: \"@hourly\"\n  sources:\n    - name: www\n      files: {paths: [%s]}\n  destinations: [disk]\n  encryption: {none: true}\n", name, filepath.Join(dir, "data"))
		last := now.Add(-time.Duration(i%90) * time.Minute)
		st := v1.ObjectStatus{LastSuccessfulTime: &last, LastRun: &v1.RunResult{StartTime: last, Result: v1.ResultSucceeded,
			Sources: []v1.SourceResult{{Name: "www", Result: v1.ResultSucceeded, Bytes: int64(i) << 20}}},
			Conditions: []v1.Condition{{Type: v1.ConditionReady, Status: v1.ConditionTrue, Reason: "BackupSucceeded", LastTransitionTime: last}}}
		if i%5 == 0 {
			st.Conditions[0].Status, st.Conditions[0].Message = v1.ConditionFalse, "destination disk: upload failed"
		}
		sf.Items = append(sf.Items, v1.StatusEntry{APIVersion: "aegis.io/v1", Kind: v1.KindBackupPolicy, Name: name, Status: st})
	}
	manifest := filepath.Join(conf, "policies.yaml")
	if err := os.WriteFile(manifest, []byte(m.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	if err := reconcile.WriteStatusFile(reconcile.StatusPath(manifest, ""), sf); err != nil {
		b.Fatal(err)
	}
	writeFleet(b, dest, hosts, sources, now)
	users := filepath.Join(dir, "users")
	if err := AddUser(users, "alice", RoleViewer, []byte(viewerPass)); err != nil {
		b.Fatal(err)
	}
	srv, err := New(context.Background(), Options{ConfigDir: conf, StateDir: filepath.Join(dir, "state"), Host: "bench", UsersFile: users, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	id, _ := srv.sessions.create("alice", RoleViewer)
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: id})
	return srv, req
}

// writeFleet writes the status objects of hosts hosts, each with two
// policies of sources/2 sources.
func writeFleet(b *testing.B, dest string, hosts, sources int, now time.Time) {
	d := local.New(dest)
	for h := range hosts {
		hs := reconcile.HostStatus{FormatVersion: 1, Host: fmt.Sprintf("host-%03d", h), Time: now.Add(-time.Duration(h) * time.Minute), Agent: "bench"}
		for p := range 2 {
			last := now.Add(-time.Duration(h*p) * time.Hour)
			ps := reconcile.HostPolicyStatus{Name: fmt.Sprintf("policy-%d", p), Schedule: "@hourly", Interval: "1h0m0s", LastResult: v1.ResultSucceeded, LastSuccessfulTime: &last}
			for s := range sources / 2 {
				ps.Sources = append(ps.Sources, reconcile.HostSourceStatus{Name: fmt.Sprintf("src-%d", s), Snapshot: v1.NewSnapshotID(last), Time: last, Bytes: 1 << 30})
			}
			hs.Policies = append(hs.Policies, ps)
		}
		body, _ := json.Marshal(hs)
		if _, err := d.Put(context.Background(), reconcile.HostStatusKey(hs.Host), bytes.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
}

func serve(b *testing.B, srv *Server, req *http.Request, path string) {
	r := req.Clone(context.Background())
	r.URL.Path = path
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, r)
	if w.Code != 200 {
		b.Fatalf("%s: status %d: %.300s", path, w.Code, w.Body.String())
	}
}

// BenchmarkOverview1000 renders the overview of 1,000 policies whose files
// did not change since the last page (the console checks their sizes and
// times, and sums up every policy again).
func BenchmarkOverview1000(b *testing.B) {
	srv, req := benchServer(b, 1000, 0, 0)
	serve(b, srv, req, "/") // the first page reads the files
	for b.Loop() {
		serve(b, srv, req, "/")
	}
}

// BenchmarkOverview1000Changed renders the overview of 1,000 policies
// right after their status sidecar changed: it parses every manifest and
// status again.
func BenchmarkOverview1000Changed(b *testing.B) {
	srv, req := benchServer(b, 1000, 0, 0)
	status := reconcile.StatusPath(filepath.Join(srv.opts.ConfigDir, "policies.yaml"), "")
	t := time.Now()
	for b.Loop() {
		t = t.Add(time.Second)
		if err := os.Chtimes(status, t, t); err != nil {
			b.Fatal(err)
		}
		serve(b, srv, req, "/")
	}
}

// BenchmarkFleet500x10 renders the fleet view of 500 hosts of 10
// snapshots (sources) each, read from a local destination.
func BenchmarkFleet500x10(b *testing.B) {
	srv, req := benchServer(b, 1, 500, 10)
	for b.Loop() {
		serve(b, srv, req, "/fleet")
	}
}

// BenchmarkConsoleMemory reports what a console holds once it has served
// its pages (MiB of live heap after a GC, over the agent's own).
func BenchmarkConsoleMemory(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		srv, req := benchServer(b, 10, 10, 10)
		for _, p := range []string{"/", "/fleet", "/policies/policy-0001", "/audit", "/log"} {
			serve(b, srv, req, p)
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "MiB-heap")
		runtime.KeepAlive(srv)
		b.StartTimer()
	}
}
