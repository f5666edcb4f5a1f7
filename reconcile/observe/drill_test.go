package observe

import (
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

func TestDrillEvent(t *testing.T) {
	ok := &v1.DrillResult{Result: v1.ResultSucceeded}
	bad := &v1.DrillResult{Result: v1.ResultFailed, Error: "source site: boom"}
	for _, tc := range []struct {
		name      string
		prev, res *v1.DrillResult
		onSuccess bool
		want      string
	}{
		{"first fails", nil, bad, false, EventDrillFailure},
		{"fails after success", ok, bad, false, EventDrillFailure},
		{"keeps failing: alerted once", bad, bad, false, ""},
		{"recovers", bad, ok, false, EventDrillRecovery},
		{"success after success", ok, ok, false, ""},
		{"success with onSuccess", ok, ok, true, EventDrillSuccess},
	} {
		if got := DrillEvent(tc.prev, tc.res, tc.onSuccess); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	now := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	res := &v1.DrillResult{Result: v1.ResultFailed, Error: "source site: boom", Report: "/var/log/aegis/drills/web-x.json",
		Sources: []v1.DrillSourceResult{{Name: "site", Result: v1.ResultFailed, SnapshotID: "20261204T010000Z-abcdef", Error: "boom"}}}
	b := NewDrillWebhookBody(EventDrillFailure, "h1", "web", res, now)
	if b.Text != "aegis: restore drill of web on h1 Failed: source site: boom" || b.SnapshotID != "20261204T010000Z-abcdef" ||
		b.LogFile != res.Report || len(b.Sources) != 1 || b.Sources[0].Error != "boom" {
		t.Errorf("body %+v", b)
	}
}
