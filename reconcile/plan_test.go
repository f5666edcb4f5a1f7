package reconcile

import (
	"fmt"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// utc is a fixed instant of the fake clock on Thursday 2026-01-15.
func utc(day, hour, min int) time.Time {
	return time.Date(2026, time.January, day, hour, min, 0, 0, time.UTC)
}

func policy(name, schedule string, opts ...func(*v1.BackupPolicy)) *v1.BackupPolicy {
	p := &v1.BackupPolicy{
		TypeMeta: v1.TypeMeta{APIVersion: v1.APIVersion, Kind: v1.KindBackupPolicy},
		Metadata: v1.ObjectMeta{Name: name},
		Spec: v1.BackupPolicySpec{
			Schedule:     schedule,
			Sources:      []v1.Source{{Name: "site", Files: &v1.FilesSource{Paths: []string{"/var/www"}}}},
			Destinations: []string{"disk"},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func suspended(p *v1.BackupPolicy) { p.Spec.Suspend = true }

func inZone(tz string) func(*v1.BackupPolicy) {
	return func(p *v1.BackupPolicy) { p.Spec.TimeZone = tz }
}

func withRetention(schedule string) func(*v1.BackupPolicy) {
	return func(p *v1.BackupPolicy) { p.Spec.Retention = &v1.Retention{Daily: 7, Schedule: schedule} }
}

// succeeded is the record of a run for slot that succeeded a minute later.
func succeeded(slot time.Time) PolicyRecord {
	return PolicyRecord{
		LastScheduleTime:   slot,
		LastAttemptTime:    slot,
		LastSuccessfulTime: slot.Add(time.Minute),
		LastResult:         v1.ResultSucceeded,
	}
}

// retainedAt is r with retention last run at t.
func retainedAt(r PolicyRecord, t time.Time) PolicyRecord {
	r.LastRetentionTime = t
	return r
}

// failedAfter is the record of a run for slot that failed, after a success
// at lastOK.
func failedAfter(lastOK, slot time.Time) PolicyRecord {
	return PolicyRecord{
		LastScheduleTime:   slot,
		LastAttemptTime:    slot,
		LastSuccessfulTime: lastOK,
		LastResult:         v1.ResultFailed,
	}
}

func TestCompute(t *testing.T) {
	// 2026-03-29 is the spring-forward day in Berlin: 02:00 CET becomes
	// 03:00 CEST, at 01:00 UTC.
	dst := func(day, hour, min int) time.Time {
		return time.Date(2026, time.March, day, hour, min, 0, 0, time.UTC)
	}

	tests := []struct {
		name    string
		world   World
		want    []Action
		plans   map[string]PolicyPlan // checked when present
		wake    time.Time
		wantLen int // policies in the plan; -1 = len(world.Policies)
	}{
		{
			name:  "first run is due at once",
			world: World{Policies: []*v1.BackupPolicy{policy("web", "0 * * * *")}, Now: utc(15, 10, 30)},
			want:  []Action{{ActionBackup, "web", utc(15, 10, 30), ReasonFirstRun}},
			plans: map[string]PolicyPlan{"web": {"web", true, utc(15, 11, 0), ReasonFirstRun}},
			wake:  utc(15, 11, 0),
		},
		{
			name: "missed slot is due",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 * * * *")},
				Records:  map[string]PolicyRecord{"web": succeeded(utc(15, 9, 0))},
				Now:      utc(15, 10, 30),
			},
			want:  []Action{{ActionBackup, "web", utc(15, 10, 0), ReasonScheduled}},
			plans: map[string]PolicyPlan{"web": {"web", true, utc(15, 11, 0), ReasonScheduled}},
			wake:  utc(15, 11, 0),
		},
		{
			name: "slot exactly now is due",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 * * * *")},
				Records:  map[string]PolicyRecord{"web": succeeded(utc(15, 10, 0))},
				Now:      utc(15, 11, 0),
			},
			want:  []Action{{ActionBackup, "web", utc(15, 11, 0), ReasonScheduled}},
			plans: map[string]PolicyPlan{"web": {"web", true, utc(15, 12, 0), ReasonScheduled}},
			wake:  utc(15, 12, 0),
		},
		{
			name: "not due before the next slot",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 * * * *")},
				Records:  map[string]PolicyRecord{"web": succeeded(utc(15, 10, 0))},
				Now:      utc(15, 10, 59),
			},
			plans: map[string]PolicyPlan{"web": {"web", false, utc(15, 11, 0), ReasonWaitingForSchedule}},
			wake:  utc(15, 11, 0),
		},
		{
			name: "a week of downtime gives one catch-up run for the latest slot",
			world: World{
				Policies: []*v1.BackupPolicy{policy("hourly", "0 * * * *"), policy("nightly", "0 2 * * *")},
				Records: map[string]PolicyRecord{
					"hourly":  succeeded(utc(8, 10, 0)),
					"nightly": succeeded(utc(8, 2, 0)),
				},
				Now: utc(15, 10, 30),
			},
			want: []Action{
				{ActionBackup, "hourly", utc(15, 10, 0), ReasonScheduled},
				{ActionBackup, "nightly", utc(15, 2, 0), ReasonScheduled},
			},
			plans: map[string]PolicyPlan{
				"hourly":  {"hourly", true, utc(15, 11, 0), ReasonScheduled},
				"nightly": {"nightly", true, utc(16, 2, 0), ReasonScheduled},
			},
			wake: utc(15, 11, 0),
		},
		{
			name: "@every keeps its cadence from the last slot",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "@every 90m")},
				Records:  map[string]PolicyRecord{"web": succeeded(utc(15, 9, 0))},
				Now:      utc(15, 10, 0),
			},
			plans: map[string]PolicyPlan{"web": {"web", false, utc(15, 10, 30), ReasonWaitingForSchedule}},
			wake:  utc(15, 10, 30),
		},
		{
			name: "suspended policy does nothing",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 * * * *", suspended, withRetention(""))},
				Records:  map[string]PolicyRecord{"web": succeeded(utc(8, 10, 0))},
				Now:      utc(15, 10, 30),
			},
			plans: map[string]PolicyPlan{"web": {"web", false, time.Time{}, ReasonSuspended}},
		},
		{
			name: "running policy gets no second run and no retention",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 * * * *", withRetention(""))},
				Records:  map[string]PolicyRecord{"web": succeeded(utc(14, 9, 0))},
				Running:  map[string]bool{"web": true},
				Now:      utc(15, 10, 30),
			},
			plans: map[string]PolicyPlan{"web": {"web", false, utc(15, 11, 0), ReasonRunning}},
			wake:  utc(15, 11, 0),
		},
		{
			name: "running first run is not started again",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 * * * *")},
				Records:  map[string]PolicyRecord{"web": {LastScheduleTime: utc(15, 10, 29), LastAttemptTime: utc(15, 10, 29)}},
				Running:  map[string]bool{"web": true},
				Now:      utc(15, 10, 30),
			},
			plans: map[string]PolicyPlan{"web": {"web", false, utc(15, 11, 0), ReasonRunning}},
			wake:  utc(15, 11, 0),
		},
		{
			name: "hourly edited to daily: no run until the daily slot",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 2 * * *")},
				Records:  map[string]PolicyRecord{"web": succeeded(utc(15, 10, 0))},
				Now:      utc(15, 10, 30),
			},
			plans: map[string]PolicyPlan{"web": {"web", false, utc(16, 2, 0), ReasonWaitingForSchedule}},
			wake:  utc(16, 2, 0),
		},
		{
			name: "hourly edited to daily: a missed daily slot runs once",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 2 * * *")},
				Records:  map[string]PolicyRecord{"web": succeeded(utc(15, 1, 0))},
				Now:      utc(15, 10, 30),
			},
			want:  []Action{{ActionBackup, "web", utc(15, 2, 0), ReasonScheduled}},
			plans: map[string]PolicyPlan{"web": {"web", true, utc(16, 2, 0), ReasonScheduled}},
			wake:  utc(16, 2, 0),
		},
		{
			name: "daily edited to hourly: one run for the latest hourly slot",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 * * * *")},
				Records:  map[string]PolicyRecord{"web": succeeded(utc(15, 2, 0))},
				Now:      utc(15, 10, 30),
			},
			want: []Action{{ActionBackup, "web", utc(15, 10, 0), ReasonScheduled}},
			wake: utc(15, 11, 0),
		},
		{
			name: "failed attempt waits RetryAfter",
			world: World{
				Policies:   []*v1.BackupPolicy{policy("web", "0 * * * *")},
				Records:    map[string]PolicyRecord{"web": failedAfter(utc(15, 9, 1), utc(15, 10, 0))},
				Now:        utc(15, 10, 3),
				RetryAfter: 5 * time.Minute,
			},
			plans: map[string]PolicyPlan{"web": {"web", false, utc(15, 10, 5), ReasonWaitingForRetry}},
			wake:  utc(15, 10, 5),
		},
		{
			name: "failed attempt is retried for the same slot after RetryAfter",
			world: World{
				Policies:   []*v1.BackupPolicy{policy("web", "0 * * * *")},
				Records:    map[string]PolicyRecord{"web": failedAfter(utc(15, 9, 1), utc(15, 10, 0))},
				Now:        utc(15, 10, 5),
				RetryAfter: 5 * time.Minute,
			},
			want:  []Action{{ActionBackup, "web", utc(15, 10, 0), ReasonRetryAfterFailure}},
			plans: map[string]PolicyPlan{"web": {"web", true, utc(15, 11, 0), ReasonRetryAfterFailure}},
			wake:  utc(15, 11, 0),
		},
		{
			name: "failed attempt with RetryAfter 0 is retried at once",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 * * * *")},
				Records:  map[string]PolicyRecord{"web": failedAfter(utc(15, 9, 1), utc(15, 10, 0))},
				Now:      utc(15, 10, 0),
			},
			want: []Action{{ActionBackup, "web", utc(15, 10, 0), ReasonRetryAfterFailure}},
			wake: utc(15, 11, 0),
		},
		{
			name: "interrupted run (no result recorded) is retried",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 * * * *")},
				Records: map[string]PolicyRecord{"web": {
					LastScheduleTime: utc(15, 10, 0), LastAttemptTime: utc(15, 10, 0),
					LastSuccessfulTime: utc(15, 9, 1), LastResult: "",
				}},
				Now:        utc(15, 10, 20),
				RetryAfter: 5 * time.Minute,
			},
			want: []Action{{ActionBackup, "web", utc(15, 10, 0), ReasonRetryAfterFailure}},
			wake: utc(15, 11, 0),
		},
		{
			name: "retry later than the next slot: the schedule applies",
			world: World{
				Policies:   []*v1.BackupPolicy{policy("web", "0 * * * *")},
				Records:    map[string]PolicyRecord{"web": failedAfter(utc(15, 9, 1), utc(15, 10, 0))},
				Now:        utc(15, 10, 30),
				RetryAfter: 2 * time.Hour,
			},
			plans: map[string]PolicyPlan{"web": {"web", false, utc(15, 11, 0), ReasonWaitingForSchedule}},
			wake:  utc(15, 11, 0),
		},
		{
			name: "retry later than the next slot: the slot runs",
			world: World{
				Policies:   []*v1.BackupPolicy{policy("web", "0 * * * *")},
				Records:    map[string]PolicyRecord{"web": failedAfter(utc(15, 9, 1), utc(15, 10, 0))},
				Now:        utc(15, 11, 0),
				RetryAfter: 2 * time.Hour,
			},
			want: []Action{{ActionBackup, "web", utc(15, 11, 0), ReasonScheduled}},
			wake: utc(15, 12, 0),
		},
		{
			name: "failure then downtime: one run for the latest slot, not the stale one",
			world: World{
				Policies:   []*v1.BackupPolicy{policy("web", "0 * * * *")},
				Records:    map[string]PolicyRecord{"web": failedAfter(utc(15, 9, 1), utc(15, 10, 0))},
				Now:        utc(16, 9, 30),
				RetryAfter: 5 * time.Minute,
			},
			want: []Action{{ActionBackup, "web", utc(16, 9, 0), ReasonScheduled}},
			wake: utc(16, 10, 0),
		},
		{
			name: "never succeeded, failed 2m ago: wait for RetryAfter",
			world: World{
				Policies:   []*v1.BackupPolicy{policy("web", "0 2 * * *")},
				Records:    map[string]PolicyRecord{"web": {LastScheduleTime: utc(15, 10, 0), LastAttemptTime: utc(15, 10, 0), LastResult: v1.ResultFailed}},
				Now:        utc(15, 10, 2),
				RetryAfter: 5 * time.Minute,
			},
			plans: map[string]PolicyPlan{"web": {"web", false, utc(15, 10, 5), ReasonWaitingForRetry}},
			wake:  utc(15, 10, 5),
		},
		{
			name: "never succeeded, failed 10m ago: retried at once",
			world: World{
				Policies:   []*v1.BackupPolicy{policy("web", "0 2 * * *")},
				Records:    map[string]PolicyRecord{"web": {LastScheduleTime: utc(15, 10, 0), LastAttemptTime: utc(15, 10, 0), LastResult: v1.ResultFailed}},
				Now:        utc(15, 10, 10),
				RetryAfter: 5 * time.Minute,
			},
			want:  []Action{{ActionBackup, "web", utc(15, 10, 10), ReasonRetryAfterFailure}},
			plans: map[string]PolicyPlan{"web": {"web", true, utc(16, 2, 0), ReasonRetryAfterFailure}},
			wake:  utc(16, 2, 0),
		},
		{
			name: "never succeeded, RetryAfter 0: retried at once",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 2 * * *")},
				Records:  map[string]PolicyRecord{"web": {LastScheduleTime: utc(15, 10, 0), LastAttemptTime: utc(15, 10, 0), LastResult: v1.ResultFailed}},
				Now:      utc(15, 10, 0),
			},
			want: []Action{{ActionBackup, "web", utc(15, 10, 0), ReasonRetryAfterFailure}},
			wake: utc(16, 2, 0),
		},
		{
			name: "retention due on its default schedule",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 * * * *", withRetention(""))},
				Records:  map[string]PolicyRecord{"web": retainedAt(succeeded(utc(15, 10, 0)), utc(14, 1, 0))},
				Now:      utc(15, 10, 30),
			},
			want:  []Action{{ActionRetention, "web", utc(15, 1, 0), ReasonScheduled}},
			plans: map[string]PolicyPlan{"web": {"web", false, utc(15, 11, 0), ReasonWaitingForSchedule}},
			wake:  utc(15, 11, 0),
		},
		{
			name: "retention not due, its next slot wakes the agent",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "@weekly", withRetention(""))},
				Records:  map[string]PolicyRecord{"web": retainedAt(succeeded(utc(11, 0, 0)), utc(15, 1, 0))},
				Now:      utc(15, 10, 30),
			},
			plans: map[string]PolicyPlan{"web": {"web", false, utc(18, 0, 0), ReasonWaitingForSchedule}},
			wake:  utc(16, 1, 0),
		},
		{
			name: "retention counts from the last success when it never ran",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 23 * * *", withRetention(""))},
				Records:  map[string]PolicyRecord{"web": succeeded(utc(14, 23, 0))},
				Now:      utc(15, 10, 30),
			},
			want: []Action{{ActionRetention, "web", utc(15, 1, 0), ReasonScheduled}},
			wake: utc(15, 23, 0),
		},
		{
			name: "retention never scheduled before a first success",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 23 * * *", withRetention(""))},
				Records:  map[string]PolicyRecord{"web": {LastScheduleTime: utc(8, 23, 0), LastAttemptTime: utc(8, 23, 0), LastResult: v1.ResultFailed}},
				Now:      utc(15, 10, 30),
			},
			want: []Action{{ActionBackup, "web", utc(15, 10, 30), ReasonRetryAfterFailure}},
			wake: utc(15, 23, 0),
		},
		{
			name: "retention schedule in the policy's time zone",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 23 * * *", inZone("Europe/Berlin"), withRetention("0 3 * * *"))},
				Records:  map[string]PolicyRecord{"web": retainedAt(succeeded(utc(14, 22, 0)), utc(14, 2, 0))},
				Now:      utc(15, 1, 59),
			},
			plans: map[string]PolicyPlan{"web": {"web", false, utc(15, 22, 0), ReasonWaitingForSchedule}},
			wake:  utc(15, 2, 0), // 03:00 CET
		},
		{
			name: "daily 02:00 Europe/Berlin evaluated in UTC: not yet",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 2 * * *", inZone("Europe/Berlin"))},
				Records:  map[string]PolicyRecord{"web": succeeded(utc(14, 1, 0))},
				Now:      utc(15, 0, 30), // 01:30 CET
			},
			plans: map[string]PolicyPlan{"web": {"web", false, utc(15, 1, 0), ReasonWaitingForSchedule}},
			wake:  utc(15, 1, 0),
		},
		{
			name: "daily 02:00 Europe/Berlin evaluated in UTC: due at 01:00 UTC in winter",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 2 * * *", inZone("Europe/Berlin"))},
				Records:  map[string]PolicyRecord{"web": succeeded(utc(14, 1, 0))},
				Now:      utc(15, 1, 30),
			},
			want: []Action{{ActionBackup, "web", utc(15, 1, 0), ReasonScheduled}},
			wake: utc(16, 1, 0),
		},
		{
			name: "daily 02:00 Europe/Berlin evaluated in UTC: due at 00:00 UTC in summer",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 2 * * *", inZone("Europe/Berlin"))},
				Records:  map[string]PolicyRecord{"web": succeeded(time.Date(2026, 7, 14, 0, 0, 0, 0, time.UTC))},
				Now:      time.Date(2026, 7, 15, 0, 30, 0, 0, time.UTC),
			},
			want: []Action{{ActionBackup, "web", time.Date(2026, 7, 15, 0, 0, 0, 0, time.UTC), ReasonScheduled}},
			wake: time.Date(2026, 7, 16, 0, 0, 0, 0, time.UTC),
		},
		{
			name: "spring forward: hourly slots continue across the missing hour",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 * * * *", inZone("Europe/Berlin"))},
				Records:  map[string]PolicyRecord{"web": succeeded(dst(29, 0, 0))}, // 01:00 CET
				Now:      dst(29, 1, 30),                                           // 03:30 CEST
			},
			want:  []Action{{ActionBackup, "web", dst(29, 1, 0), ReasonScheduled}}, // 03:00 CEST
			plans: map[string]PolicyPlan{"web": {"web", true, dst(29, 2, 0), ReasonScheduled}},
			wake:  dst(29, 2, 0),
		},
		{
			name: "spring forward: daily 03:00 runs one hour earlier in UTC",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 3 * * *", inZone("Europe/Berlin"))},
				Records:  map[string]PolicyRecord{"web": succeeded(dst(28, 2, 0))}, // 03:00 CET
				Now:      dst(29, 1, 30),
			},
			want: []Action{{ActionBackup, "web", dst(29, 1, 0), ReasonScheduled}}, // 03:00 CEST
			wake: dst(30, 1, 0),
		},
		{
			// 02:00 does not exist in Berlin on 2026-03-29: the slot runs
			// when the clock jumps to 03:00 CEST (01:00 UTC), as cron does.
			name: "spring forward: a daily slot inside the missing hour runs when the clock jumps",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 2 * * *", inZone("Europe/Berlin"))},
				Records:  map[string]PolicyRecord{"web": succeeded(dst(28, 1, 0))}, // 02:00 CET
				Now:      dst(29, 12, 0),
			},
			want:  []Action{{ActionBackup, "web", dst(29, 1, 0), ReasonScheduled}},
			plans: map[string]PolicyPlan{"web": {"web", true, dst(30, 0, 0), ReasonScheduled}},
			wake:  dst(30, 0, 0),
		},
		{
			// 2026-10-25 in Berlin: 03:00 CEST becomes 02:00 CET at 01:00
			// UTC. An hourly schedule (wildcard hour) runs in both 02:00
			// hours, as cron runs its wildcard jobs: every real hour.
			name: "fall back: an hourly schedule is due again in the repeated hour",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 * * * *", inZone("Europe/Berlin"))},
				Records:  map[string]PolicyRecord{"web": succeeded(time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC))}, // 02:00 CEST
				Now:      time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC),                                           // 02:30 CET
			},
			want:  []Action{{ActionBackup, "web", time.Date(2026, 10, 25, 1, 0, 0, 0, time.UTC), ReasonScheduled}}, // 02:00 CET
			plans: map[string]PolicyPlan{"web": {"web", true, time.Date(2026, 10, 25, 2, 0, 0, 0, time.UTC), ReasonScheduled}},
			wake:  time.Date(2026, 10, 25, 2, 0, 0, 0, time.UTC), // 03:00 CET
		},
		{
			name: "fall back: an hourly schedule waits for the second 02:00, one real hour later",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 * * * *", inZone("Europe/Berlin"))},
				Records:  map[string]PolicyRecord{"web": succeeded(time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC))}, // 02:00 CEST
				Now:      time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC),                                           // 02:30 CEST
			},
			plans: map[string]PolicyPlan{"web": {"web", false, time.Date(2026, 10, 25, 1, 0, 0, 0, time.UTC), ReasonWaitingForSchedule}},
			wake:  time.Date(2026, 10, 25, 1, 0, 0, 0, time.UTC), // 02:00 CET
		},
		{
			// A fixed hour runs once, at the first 02:30 (CEST).
			name: "fall back: a daily 02:30 is not due again in the repeated hour",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "30 2 * * *", inZone("Europe/Berlin"))},
				Records:  map[string]PolicyRecord{"web": succeeded(time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC))}, // 02:30 CEST
				Now:      time.Date(2026, 10, 25, 1, 45, 0, 0, time.UTC),                                            // 02:45 CET
			},
			plans: map[string]PolicyPlan{"web": {"web", false, time.Date(2026, 10, 26, 1, 30, 0, 0, time.UTC), ReasonWaitingForSchedule}},
			wake:  time.Date(2026, 10, 26, 1, 30, 0, 0, time.UTC), // 02:30 CET the next day
		},
		{
			name: "fall back: a daily 02:30 missed in the first hour is caught up once",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "30 2 * * *", inZone("Europe/Berlin"))},
				Records:  map[string]PolicyRecord{"web": succeeded(time.Date(2026, 10, 24, 0, 30, 0, 0, time.UTC))}, // 02:30 CEST the day before
				Now:      time.Date(2026, 10, 25, 1, 45, 0, 0, time.UTC),                                            // 02:45 CET
			},
			want:  []Action{{ActionBackup, "web", time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), ReasonScheduled}}, // 02:30 CEST
			plans: map[string]PolicyPlan{"web": {"web", true, time.Date(2026, 10, 26, 1, 30, 0, 0, time.UTC), ReasonScheduled}},
			wake:  time.Date(2026, 10, 26, 1, 30, 0, 0, time.UTC),
		},
		{
			name: "several policies: actions sorted by policy then type, earliest wake",
			world: World{
				Policies: []*v1.BackupPolicy{
					policy("web", "0 * * * *", withRetention("")),
					policy("db", "*/15 * * * *", withRetention("")),
					policy("mail", "0 * * * *"),
					policy("archive", "0 2 * * *", suspended),
					policy("app", "0 * * * *", withRetention("")),
				},
				Records: map[string]PolicyRecord{
					"web":  retainedAt(succeeded(utc(15, 9, 0)), utc(14, 1, 0)),
					"db":   retainedAt(succeeded(utc(15, 10, 15)), utc(14, 1, 0)),
					"mail": succeeded(utc(15, 10, 0)),
					"app":  succeeded(utc(14, 9, 0)),
				},
				Now: utc(15, 10, 20),
			},
			want: []Action{
				{ActionBackup, "app", utc(15, 10, 0), ReasonScheduled},
				{ActionRetention, "app", utc(15, 1, 0), ReasonScheduled},
				{ActionRetention, "db", utc(15, 1, 0), ReasonScheduled},
				{ActionBackup, "web", utc(15, 10, 0), ReasonScheduled},
				{ActionRetention, "web", utc(15, 1, 0), ReasonScheduled},
			},
			plans: map[string]PolicyPlan{
				"db":      {"db", false, utc(15, 10, 30), ReasonWaitingForSchedule},
				"mail":    {"mail", false, utc(15, 11, 0), ReasonWaitingForSchedule},
				"archive": {"archive", false, time.Time{}, ReasonSuspended},
			},
			wake: utc(15, 10, 30),
		},
		{
			name: "invalid schedule is skipped, the others still planned",
			world: World{
				Policies: []*v1.BackupPolicy{policy("bad", "every tuesday"), policy("web", "0 * * * *")},
				Now:      utc(15, 10, 30),
			},
			want: []Action{{ActionBackup, "web", utc(15, 10, 30), ReasonFirstRun}},
			plans: map[string]PolicyPlan{
				"bad": {"bad", false, time.Time{}, ReasonInvalidSchedule},
			},
			wake: utc(15, 11, 0),
		},
		{
			name: "a repeated name is planned once",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 * * * *"), policy("web", "*/5 * * * *"), nil},
				Now:      utc(15, 10, 30),
			},
			want:    []Action{{ActionBackup, "web", utc(15, 10, 30), ReasonFirstRun}},
			wake:    utc(15, 11, 0),
			wantLen: 1,
		},
		{
			name: "recorded times ahead of the clock: nothing due until the slot after them",
			world: World{
				Policies: []*v1.BackupPolicy{policy("web", "0 * * * *")},
				Records:  map[string]PolicyRecord{"web": succeeded(utc(15, 12, 0))},
				Now:      utc(15, 10, 30),
			},
			plans: map[string]PolicyPlan{"web": {"web", false, utc(15, 13, 0), ReasonWaitingForSchedule}},
			wake:  utc(15, 13, 0),
		},
		{
			name:  "no policies: no wake",
			world: World{Now: utc(15, 10, 30)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Compute(tc.world)
			if err := sameActions(got.Actions, tc.want); err != nil {
				t.Errorf("Actions: %v\n got %s\nwant %s", err, formatActions(got.Actions), formatActions(tc.want))
			}
			for name, want := range tc.plans {
				if g, ok := got.Policies[name]; !ok {
					t.Errorf("Policies[%q] missing, want %+v", name, want)
				} else if !samePolicyPlan(g, want) {
					t.Errorf("Policies[%q]:\n got %s\nwant %s", name, formatPolicyPlan(g), formatPolicyPlan(want))
				}
			}
			wantLen := tc.wantLen
			if wantLen == 0 {
				wantLen = len(tc.world.Policies)
			}
			if len(got.Policies) != wantLen {
				t.Errorf("len(Policies) = %d, want %d", len(got.Policies), wantLen)
			}
			if !got.Wake.Equal(tc.wake) {
				t.Errorf("Wake = %s, want %s", fmtTime(got.Wake), fmtTime(tc.wake))
			}
			if !got.Wake.IsZero() && !got.Wake.After(tc.world.Now) {
				t.Errorf("Wake = %s, want after now %s", fmtTime(got.Wake), fmtTime(tc.world.Now))
			}
		})
	}
}

// TestComputeSimulation runs a fake agent on the fake clock, one tick a
// minute for three days with a day and a half of downtime, and checks that
// every slot while up runs once, the downtime gives one catch-up run, and
// the agent sleeps no longer than the next slot.
func TestComputeSimulation(t *testing.T) {
	p := policy("web", "0 */2 * * *", withRetention(""))
	rec := map[string]PolicyRecord{}
	start := utc(15, 0, 30)
	downFrom, downTo := utc(16, 3, 0), utc(17, 14, 40)
	var backups, retentions []time.Time
	for now := start; now.Before(utc(18, 0, 30)); now = now.Add(time.Minute) {
		if !now.Before(downFrom) && now.Before(downTo) {
			continue
		}
		plan := Compute(World{Policies: []*v1.BackupPolicy{p}, Records: rec, Now: now, RetryAfter: 5 * time.Minute})
		if n := len(plan.Actions); n > 2 {
			t.Fatalf("%s: %d actions, want at most 2: %s", fmtTime(now), n, formatActions(plan.Actions))
		}
		if plan.Wake.IsZero() || !plan.Wake.After(now) || plan.Wake.After(now.Add(2*time.Hour)) {
			t.Fatalf("%s: Wake = %s, want within the next two hours", fmtTime(now), fmtTime(plan.Wake))
		}
		r := rec["web"]
		for _, a := range plan.Actions {
			switch a.Type {
			case ActionBackup:
				backups = append(backups, a.ScheduledTime)
				r.LastScheduleTime, r.LastAttemptTime, r.LastSuccessfulTime = a.ScheduledTime, now, now
				r.LastResult = v1.ResultSucceeded
			case ActionRetention:
				retentions = append(retentions, a.ScheduledTime)
				r.LastRetentionTime = now
			}
		}
		rec["web"] = r
	}

	want := []time.Time{utc(15, 0, 30)} // the first run
	for h := 2; h <= 24+2; h += 2 {     // up until 16 03:00
		want = append(want, utc(15, 0, 0).Add(time.Duration(h)*time.Hour))
	}
	want = append(want, utc(17, 14, 0)) // one catch-up run for the downtime
	for h := 16; h < 24; h += 2 {
		want = append(want, utc(17, h, 0))
	}
	want = append(want, utc(18, 0, 0))
	if !sameTimes(backups, want) {
		t.Errorf("backups for slots\n got %s\nwant %s", fmtTimes(backups), fmtTimes(want))
	}
	// The last slot is missed during the downtime and caught up once.
	wantRet := []time.Time{utc(15, 1, 0), utc(16, 1, 0), utc(17, 1, 0)}
	if !sameTimes(retentions, wantRet) {
		t.Errorf("retention for slots\n got %s\nwant %s", fmtTimes(retentions), fmtTimes(wantRet))
	}
}

func TestComputeIsPure(t *testing.T) {
	w := World{
		Policies: []*v1.BackupPolicy{policy("b", "0 * * * *", withRetention("")), policy("a", "0 * * * *")},
		Records:  map[string]PolicyRecord{"b": succeeded(utc(14, 0, 0))},
		Now:      utc(15, 10, 30),
	}
	first := Compute(w)
	for range 3 {
		again := Compute(w)
		if err := sameActions(again.Actions, first.Actions); err != nil || !again.Wake.Equal(first.Wake) {
			t.Fatalf("second Compute differs: got %s wake %s, want %s wake %s",
				formatActions(again.Actions), fmtTime(again.Wake), formatActions(first.Actions), fmtTime(first.Wake))
		}
	}
	if len(w.Records) != 1 {
		t.Errorf("Compute changed the records: got %d, want 1", len(w.Records))
	}
}

func BenchmarkCompute(b *testing.B) {
	schedules := []string{"0 * * * *", "*/15 * * * *", "30 2 * * *", "@daily", "@every 6h"}
	zones := []string{"", "UTC", "Europe/Berlin", "America/New_York"}
	now := utc(15, 10, 7)
	w := World{Records: map[string]PolicyRecord{}, Running: map[string]bool{}, Now: now, RetryAfter: 5 * time.Minute}
	for i := range 1000 {
		name := fmt.Sprintf("policy-%04d", i)
		var opts []func(*v1.BackupPolicy)
		opts = append(opts, inZone(zones[i%len(zones)]))
		if i%2 == 0 {
			opts = append(opts, withRetention(""))
		}
		p := policy(name, schedules[i%len(schedules)], opts...)
		w.Policies = append(w.Policies, p)
		// The last slot at or before now, so nothing is due.
		s, err := v1.ParseSchedule(p.Spec.Schedule, p.Spec.TimeZone)
		if err != nil {
			b.Fatal(err)
		}
		slot := s.MostRecent(now.Add(-48*time.Hour), now)
		if p.Spec.Schedule == "@every 6h" {
			slot = now.Add(-time.Hour)
		}
		r := succeeded(slot)
		r.LastRetentionTime = now
		w.Records[name] = r
	}
	if got := len(Compute(w).Actions); got != 0 {
		b.Fatalf("got %d actions, want none due", got)
	}
	b.ReportAllocs()
	for b.Loop() {
		Compute(w)
	}
}

func sameActions(got, want []Action) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d actions, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Type != w.Type || g.Policy != w.Policy || !g.ScheduledTime.Equal(w.ScheduledTime) || g.Reason != w.Reason {
			return fmt.Errorf("action %d differs", i)
		}
	}
	return nil
}

func samePolicyPlan(got, want PolicyPlan) bool {
	return got.Policy == want.Policy && got.Due == want.Due &&
		got.NextScheduleTime.Equal(want.NextScheduleTime) && got.Reason == want.Reason
}

func sameTimes(got, want []time.Time) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !got[i].Equal(want[i]) {
			return false
		}
	}
	return true
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "zero"
	}
	return t.UTC().Format("2006-01-02T15:04Z")
}

func fmtTimes(ts []time.Time) string {
	s := "["
	for i, t := range ts {
		if i > 0 {
			s += " "
		}
		s += fmtTime(t)
	}
	return s + "]"
}

func formatActions(as []Action) string {
	s := "["
	for i, a := range as {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s/%s@%s(%s)", a.Policy, a.Type, fmtTime(a.ScheduledTime), a.Reason)
	}
	return s + "]"
}

func formatPolicyPlan(p PolicyPlan) string {
	return fmt.Sprintf("{%s due=%t next=%s reason=%s}", p.Policy, p.Due, fmtTime(p.NextScheduleTime), p.Reason)
}
