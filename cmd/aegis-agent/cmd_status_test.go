package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

var statusNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) *time.Time {
	t := statusNow.Add(-d)
	return &t
}

func statusPolicy(name, schedule string, dests ...string) *v1.Object {
	p := &v1.BackupPolicy{Metadata: v1.ObjectMeta{Name: name}}
	p.Spec.Schedule = schedule
	p.Spec.Destinations = dests
	return &v1.Object{Kind: v1.KindBackupPolicy, Name: name, File: "/etc/aegis/policies.d/" + name + ".yaml", Policy: p}
}

func ready(status, reason, msg string) []v1.Condition {
	return []v1.Condition{{Type: v1.ConditionReady, Status: status, Reason: reason, Message: msg}}
}

func TestStatusRows(t *testing.T) {
	okRun := &v1.RunResult{Result: v1.ResultSucceeded, StartTime: statusNow.Add(-20 * time.Minute), LogFile: "/var/log/aegis/backup-web.log",
		Sources:      []v1.SourceResult{{Name: "a", Bytes: 1000}, {Name: "b", Bytes: 24}},
		Destinations: []v1.DestinationResult{{Name: "disk", Result: v1.ResultSucceeded}, {Name: "offsite", Result: v1.ResultSucceeded}}}
	failRun := &v1.RunResult{Result: v1.ResultPartiallyFailed, StartTime: statusNow.Add(-5 * time.Minute), LogFile: "/var/log/aegis/backup-db.log",
		Destinations: []v1.DestinationResult{{Name: "disk", Result: v1.ResultSucceeded}, {Name: "offsite", Result: v1.ResultFailed, Error: "timeout"}}}
	reach := map[string]*v1.Condition{"disk": {Status: v1.ConditionTrue}, "offsite": {Status: v1.ConditionTrue}}
	for _, c := range []struct {
		name      string
		obj       *v1.Object
		st        v1.ObjectStatus
		seen      bool
		invalid   bool
		state     string
		overdue   bool
		healthy   int
		sizeBytes int64
	}{
		{"ok", statusPolicy("web", "@hourly", "disk", "offsite"),
			v1.ObjectStatus{Conditions: ready("True", "BackupSucceeded", ""), LastSuccessfulTime: ago(20 * time.Minute), NextScheduleTime: ago(-40 * time.Minute), LastRun: okRun},
			true, false, stateOK, false, 2, 1024},
		{"failing", statusPolicy("db", "@hourly", "disk", "offsite"),
			v1.ObjectStatus{Conditions: ready("False", "BackupPartiallyFailed", "destination offsite: timeout"), LastSuccessfulTime: ago(50 * time.Minute), NextScheduleTime: ago(-5 * time.Minute), LastRun: failRun},
			true, false, stateFailing, false, 1, 0},
		{"overdue: the last success is old", statusPolicy("old", "@hourly", "disk"),
			v1.ObjectStatus{Conditions: ready("True", "BackupSucceeded", ""), LastSuccessfulTime: ago(3 * time.Hour), NextScheduleTime: ago(-10 * time.Minute), LastRun: okRun},
			true, false, stateOverdue, true, 1, 1024},
		{"overdue: the agent stopped", statusPolicy("stopped", "@daily", "disk"),
			v1.ObjectStatus{Conditions: ready("True", "BackupSucceeded", ""), LastSuccessfulTime: ago(26 * time.Hour), NextScheduleTime: ago(2 * time.Hour), LastRun: okRun},
			true, false, stateOverdue, true, 1, 1024},
		{"a daily policy 30h after its success is fine", statusPolicy("daily", "@daily", "disk"),
			v1.ObjectStatus{Conditions: ready("True", "BackupSucceeded", ""), LastSuccessfulTime: ago(30 * time.Hour), NextScheduleTime: ago(-10 * time.Minute), LastRun: okRun},
			true, false, stateOK, false, 1, 1024},
		{"failing and overdue", statusPolicy("both", "@hourly", "disk", "offsite"),
			v1.ObjectStatus{Conditions: ready("False", "BackupFailed", "x"), LastSuccessfulTime: ago(5 * time.Hour), NextScheduleTime: ago(-time.Minute), LastRun: failRun},
			true, false, stateFailing, true, 1, 0},
		{"never run", statusPolicy("new", "@hourly", "disk"),
			v1.ObjectStatus{Conditions: ready("Unknown", "NeverRun", "")},
			true, false, statePending, false, 1, 0},
		{"no status file yet", statusPolicy("fresh", "@hourly", "disk"), v1.ObjectStatus{}, false, false, statePending, false, 1, 0},
		{"invalid", statusPolicy("bad", "@hourly", "disk"), v1.ObjectStatus{}, false, true, stateInvalid, false, 1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := statusRowOf(c.obj, c.st, c.seen, c.invalid, reach, statusNow)
			if r.State != c.state || r.Overdue != c.overdue || r.Destinations.Healthy != c.healthy || r.SizeBytes != c.sizeBytes {
				t.Errorf("row %+v\nwant state %s overdue %v healthy %d size %d", r, c.state, c.overdue, c.healthy, c.sizeBytes)
			}
		})
	}
}

func TestSuspendedIsNeverOverdue(t *testing.T) {
	o := statusPolicy("p", "@hourly", "disk")
	o.Policy.Spec.Suspend = true
	r := statusRowOf(o, v1.ObjectStatus{Conditions: ready("Unknown", "Suspended", ""), LastSuccessfulTime: ago(100 * time.Hour)}, true, false, nil, statusNow)
	if r.State != stateSuspended || r.Overdue {
		t.Errorf("row %+v", r)
	}
}

func TestStatusExitCode(t *testing.T) {
	for _, c := range []struct {
		states []string
		over   bool
		errs   int
		want   int
	}{
		{[]string{stateOK, statePending, stateSuspended}, false, 0, exitOK},
		{[]string{stateOK, stateFailing}, false, 0, exitFailed},
		{[]string{stateOverdue}, true, 0, exitFailed},
		{[]string{stateOK}, false, 1, exitInvalid},
		{nil, false, 0, exitOK},
	} {
		var rows []statusRow
		for _, s := range c.states {
			rows = append(rows, statusRow{State: s, Overdue: s == stateOverdue})
		}
		if got := statusExitCode(rows, c.errs); got != c.want {
			t.Errorf("%v with %d manifest errors: exit %d, want %d", c.states, c.errs, got, c.want)
		}
	}
}

func TestPrintStatus(t *testing.T) {
	rows := []statusRow{
		{Policy: "web", State: stateOK, LastSuccessfulTime: ago(20 * time.Minute), NextScheduleTime: ago(-40 * time.Minute),
			LastResult: v1.ResultSucceeded, LastRunTime: ago(20 * time.Minute), SizeBytes: 1536, Destinations: statusDests{Healthy: 2, Total: 2}},
		{Policy: "db", State: stateFailing, Reason: "WaitingForRetry", Message: "destination offsite: timeout", LastSuccessfulTime: ago(50 * time.Minute),
			NextScheduleTime: ago(-3 * time.Minute), LastResult: v1.ResultPartiallyFailed, LastRunTime: ago(2 * time.Minute),
			Destinations: statusDests{Healthy: 1, Total: 2, Failing: []string{"offsite"}}, LogFile: "/var/log/aegis/backup-db.log"},
		{Policy: "new", State: statePending, Destinations: statusDests{Healthy: 0, Total: 1, Failing: []string{"disk"}}},
	}
	// The table shows times in the host's zone.
	local := time.Local
	time.Local = time.UTC
	defer func() { time.Local = local }()
	var plain bytes.Buffer
	printStatus(&plain, rows, statusNow, false)
	golden(t, "status", plain.String())
	var color bytes.Buffer
	printStatus(&color, rows, statusNow, true)
	golden(t, "status-color", color.String())
	var empty bytes.Buffer
	printStatus(&empty, nil, statusNow, false)
	if empty.String() != "no BackupPolicy in the config directory\n" {
		t.Errorf("without policies: %q", empty.String())
	}
}

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with the output")

// golden compares got with testdata/NAME.golden, or writes it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (-update rewrites it):\n--- got\n%q\n--- want\n%q", path, got, want)
	}
}
