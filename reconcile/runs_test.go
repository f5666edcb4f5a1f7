package reconcile

import (
	"testing"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// TestRunsOrderRetentionAfterBackup checks the order the planner gives the
// executor: per policy, the backup first and the retention due with it
// second; a retention due alone is a run of its own.
func TestRunsOrderRetentionAfterBackup(t *testing.T) {
	plan := Compute(World{
		Policies: []*v1.BackupPolicy{
			policy("web", "0 * * * *", withRetention("")),
			policy("db", "*/15 * * * *", withRetention("")),
			policy("mail", "0 * * * *"),
		},
		Records: map[string]PolicyRecord{
			"web":  retainedAt(succeeded(utc(15, 9, 0)), utc(14, 1, 0)),
			"db":   retainedAt(succeeded(utc(15, 10, 15)), utc(14, 1, 0)),
			"mail": succeeded(utc(15, 10, 0)),
		},
		Now: utc(15, 10, 20),
	})
	runs := plan.Runs()
	type got struct {
		policy            string
		backup, retention bool
	}
	want := []got{{"db", false, true}, {"web", true, true}}
	if len(runs) != len(want) {
		t.Fatalf("got %d runs, want %d: %+v", len(runs), len(want), runs)
	}
	for i, r := range runs {
		g := got{r.Policy, r.Backup != nil, r.Retention != nil}
		if g != want[i] {
			t.Errorf("run %d = %+v, want %+v", i, g, want[i])
		}
		if r.Backup != nil && r.Backup.Type != ActionBackup || r.Retention != nil && r.Retention.Type != ActionRetention {
			t.Errorf("run %d holds actions of the wrong type: %+v", i, r)
		}
	}
}
