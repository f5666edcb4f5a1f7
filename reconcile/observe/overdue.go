package observe

import (
	"fmt"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// Overdue reports whether policy p, whose status is st, missed its schedule
// at now, and why: its last success is older than twice the schedule's
// interval (the alert rule's test too), or its next run is past by more
// than a grace of the interval, bounded to between 15 minutes and an hour
// (the agent is not running). A suspended policy, or one whose schedule
// never fires, is never overdue. It is a pure function of its arguments.
func Overdue(p *v1.BackupPolicy, st v1.ObjectStatus, now time.Time) (bool, string) {
	if p.Spec.Suspend {
		return false, ""
	}
	interval := ScheduleInterval(p, now)
	if interval <= 0 {
		return false, ""
	}
	if t := st.LastSuccessfulTime; t != nil && now.Sub(*t) > 2*interval {
		return true, fmt.Sprintf("last success %s ago, more than twice the schedule's interval (%s)", ShortAge(now.Sub(*t)), ShortAge(interval))
	}
	grace := min(max(interval, 15*time.Minute), time.Hour)
	if t := st.NextScheduleTime; t != nil && now.Sub(*t) > grace {
		return true, fmt.Sprintf("the next run was due %s ago and has not started: is the agent running?", ShortAge(now.Sub(*t)))
	}
	return false, ""
}

// ShortAge prints a duration the way a person reads it in a table: 45s,
// 12m, 3h05m, 2d04h, 40d. A negative duration prints as its opposite.
func ShortAge(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	case d < 10*24*time.Hour:
		return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
	}
	return fmt.Sprintf("%dd", int(d.Hours())/24)
}
