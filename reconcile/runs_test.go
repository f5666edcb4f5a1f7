package reconcile

import (
	"testing"
	"time"

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

// TestInterruptedRunRunsAgainAtOnce: a run the agent was stopped in the
// middle of is due at the next pass, without waiting RetryAfter, both for
// a policy that never succeeded and for one between its slots.
func TestInterruptedRunRunsAgainAtOnce(t *testing.T) {
	stopped := utc(15, 10, 5)
	for name, rec := range map[string]PolicyRecord{
		"never succeeded": {LastAttemptTime: stopped, LastResult: v1.ResultInterrupted},
		"between slots": {LastScheduleTime: utc(15, 10, 0), LastAttemptTime: stopped,
			LastSuccessfulTime: utc(15, 9, 0), LastResult: v1.ResultInterrupted},
	} {
		plan := Compute(World{
			Policies:   []*v1.BackupPolicy{policy("web", "0 * * * *")},
			Records:    map[string]PolicyRecord{"web": rec},
			Now:        stopped.Add(30 * time.Second),
			RetryAfter: 5 * time.Minute,
		})
		if len(plan.Actions) != 1 || plan.Actions[0].Type != ActionBackup {
			t.Errorf("%s: actions %s, want one backup at once", name, formatActions(plan.Actions))
		}
		// The same record with a failure waits for RetryAfter.
		rec.LastResult = v1.ResultFailed
		plan = Compute(World{Policies: []*v1.BackupPolicy{policy("web", "0 * * * *")}, Records: map[string]PolicyRecord{"web": rec},
			Now: stopped.Add(30 * time.Second), RetryAfter: 5 * time.Minute})
		if len(plan.Actions) != 0 {
			t.Errorf("%s: a failed run is retried at once: %s", name, formatActions(plan.Actions))
		}
	}
}
