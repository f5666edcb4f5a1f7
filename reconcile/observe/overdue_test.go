package observe

import (
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

func TestOverdue(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time {
		t := now.Add(-d)
		return &t
	}
	policy := func(schedule string, suspend bool) *v1.BackupPolicy {
		p := &v1.BackupPolicy{}
		p.Spec.Schedule, p.Spec.Suspend = schedule, suspend
		return p
	}
	for _, c := range []struct {
		name    string
		p       *v1.BackupPolicy
		st      v1.ObjectStatus
		overdue bool
		reason  string
	}{
		{"recent success, next run ahead", policy("@hourly", false),
			v1.ObjectStatus{LastSuccessfulTime: ago(20 * time.Minute), NextScheduleTime: ago(-40 * time.Minute)}, false, ""},
		{"success exactly twice the interval ago is still fine", policy("@hourly", false),
			v1.ObjectStatus{LastSuccessfulTime: ago(2 * time.Hour), NextScheduleTime: ago(-time.Minute)}, false, ""},
		{"success more than twice the interval ago", policy("@hourly", false),
			v1.ObjectStatus{LastSuccessfulTime: ago(3 * time.Hour), NextScheduleTime: ago(-10 * time.Minute)}, true,
			"last success 3h00m ago, more than twice the schedule's interval (1h00m)"},
		{"a daily policy 30h after its success", policy("@daily", false),
			v1.ObjectStatus{LastSuccessfulTime: ago(30 * time.Hour), NextScheduleTime: ago(-10 * time.Minute)}, false, ""},
		{"next run past by more than the grace: the agent stopped", policy("@daily", false),
			v1.ObjectStatus{LastSuccessfulTime: ago(26 * time.Hour), NextScheduleTime: ago(2 * time.Hour)}, true,
			"the next run was due 2h00m ago and has not started: is the agent running?"},
		{"next run past within the grace (an hour, for a daily policy)", policy("@daily", false),
			v1.ObjectStatus{NextScheduleTime: ago(50 * time.Minute)}, false, ""},
		{"the grace is at least 15 minutes", policy("@every 1m", false),
			v1.ObjectStatus{NextScheduleTime: ago(10 * time.Minute)}, false, ""},
		{"past the 15 minutes' grace", policy("@every 1m", false),
			v1.ObjectStatus{NextScheduleTime: ago(16 * time.Minute)}, true,
			"the next run was due 16m ago and has not started: is the agent running?"},
		{"suspended", policy("@hourly", true),
			v1.ObjectStatus{LastSuccessfulTime: ago(100 * time.Hour)}, false, ""},
		{"a schedule that does not parse", policy("nonsense", false),
			v1.ObjectStatus{LastSuccessfulTime: ago(100 * time.Hour)}, false, ""},
		{"never run, nothing scheduled yet", policy("@hourly", false), v1.ObjectStatus{}, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, why := Overdue(c.p, c.st, now)
			if got != c.overdue || why != c.reason {
				t.Errorf("Overdue = %v, %q; want %v, %q", got, why, c.overdue, c.reason)
			}
		})
	}
}

func TestShortAge(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{45 * time.Second, "45s"},
		{-45 * time.Second, "45s"},
		{-90 * time.Second, "1m"},
		{12*time.Minute + 59*time.Second, "12m"},
		{3*time.Hour + 5*time.Minute, "3h05m"},
		{52 * time.Hour, "2d04h"},
		{40*24*time.Hour + 5*time.Hour, "40d"},
	} {
		if got := ShortAge(c.d); got != c.want {
			t.Errorf("ShortAge(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}
