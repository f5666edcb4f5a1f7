package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/local"
)

func TestHostStatusFor(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	earlier := now.Add(-2 * time.Hour)
	pol := func(name string, dests ...string) *v1.BackupPolicy {
		p := &v1.BackupPolicy{}
		p.Metadata.Name = name
		p.Spec.Schedule = "@hourly"
		p.Spec.Destinations = dests
		p.Spec.Sources = []v1.Source{{Name: "www"}, {Name: "db"}}
		return p
	}
	pols := map[string]*v1.BackupPolicy{"site": pol("site", "disk"), "other": pol("other", "offsite")}
	records := map[string]ObjectRecord{"BackupPolicy/site": {
		Policy: PolicyRecord{LastResult: v1.ResultPartiallyFailed, LastAttemptTime: now, LastSuccessfulTime: earlier},
		LastRun: &v1.RunResult{SnapshotID: "20261204T120000Z-aaaaaa", StartTime: now, Result: v1.ResultPartiallyFailed, Sources: []v1.SourceResult{
			{Name: "www", Result: v1.ResultSucceeded, Bytes: 42},
			{Name: "db", Result: v1.ResultFailed, Error: "dump: connection refused"},
		}},
	}}
	prev := &HostStatus{Host: "h1", Policies: []HostPolicyStatus{{Name: "site", Sources: []HostSourceStatus{
		{Name: "db", Snapshot: "20261204T100000Z-bbbbbb", Time: earlier, Bytes: 7},
	}}}}
	hs := hostStatusFor("h1", now, "disk", pols, Plan{}, records, prev)
	if len(hs.Policies) != 1 || hs.Policies[0].Name != "site" {
		t.Fatalf("policies on disk: %+v, want only site", hs.Policies)
	}
	p := hs.Policies[0]
	if p.Interval != "1h0m0s" || p.LastResult != v1.ResultPartiallyFailed || !p.LastSuccessfulTime.Equal(earlier) {
		t.Errorf("policy status %+v", p)
	}
	want := []HostSourceStatus{
		{Name: "www", Snapshot: "20261204T120000Z-aaaaaa", Time: now, Bytes: 42},
		{Name: "db", Snapshot: "20261204T100000Z-bbbbbb", Time: earlier, Bytes: 7}, // kept from before: its run failed
	}
	for i := range want {
		if p.Sources[i] != want[i] {
			t.Errorf("source %d: got %+v, want %+v", i, p.Sources[i], want[i])
		}
	}
	if body, _ := json.Marshal(hs); strings.Contains(string(body), "connection refused") {
		t.Errorf("the host status holds an error message: %s", body)
	}
}

func TestHostStatusRoundTrip(t *testing.T) {
	ctx := context.Background()
	d := local.New(t.TempDir())
	if _, err := ReadHostStatus(ctx, d, HostStatusKey("h1")); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("missing status: %v, want ErrNotFound", err)
	}
	for _, h := range []string{"h2", "h1"} {
		body := `{"formatVersion":1,"host":"` + h + `","time":"2026-12-04T12:00:00Z","policies":[]}`
		if _, err := d.Put(ctx, HostStatusKey(h), strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	// A status moved under another host's name is refused.
	if _, err := d.Put(ctx, HostStatusKey("h3"), strings.NewReader(`{"formatVersion":1,"host":"h1"}`)); err != nil {
		t.Fatal(err)
	}
	// A snapshot manifest key never names a status object, and the reverse.
	if _, _, _, _, err := v1.ParseManifestKey(HostStatusKey("h1")); err == nil {
		t.Error("a host status key parses as a snapshot manifest key")
	}
	hosts, bad, err := ListHostStatuses(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 2 || hosts[0].Host != "h1" || hosts[1].Host != "h2" {
		t.Errorf("hosts %+v, want h1 and h2", hosts)
	}
	if len(bad) != 1 || bad[0].Error() != `host status h3/.aegis-host.json names host "h1": it was moved or edited` {
		t.Errorf("bad %v", bad)
	}
}
