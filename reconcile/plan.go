package reconcile

import (
	"cmp"
	"slices"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// DefaultRetentionSchedule is when retention runs for a policy whose
// spec.retention names no schedule: 01:00 every day in the policy's time zone.
const DefaultRetentionSchedule = "0 1 * * *"

// PolicyRecord is what the agent recorded of a policy (kept in the state
// store). The zero value means the policy was never seen.
type PolicyRecord struct {
	Generation int64
	SpecHash   string
	// LastScheduleTime is the scheduled slot the last run was started for.
	LastScheduleTime time.Time
	// LastAttemptTime is when the last run started.
	LastAttemptTime    time.Time
	LastSuccessfulTime time.Time
	// LastResult is v1.ResultSucceeded, v1.ResultFailed,
	// v1.ResultPartiallyFailed or "".
	LastResult        string
	LastRetentionTime time.Time
	// LastDrillTime is when the last restore drill started, whatever its
	// result; LastDrillSuccessTime the last that succeeded; LastDrill its
	// evidence.
	LastDrillTime        time.Time
	LastDrillSuccessTime time.Time
	LastDrill            *v1.DrillResult `json:",omitempty"`
}

// World is everything Compute looks at: the desired policies, what was
// recorded of them, what is running, and the time.
type World struct {
	// Policies are the valid desired policies.
	Policies []*v1.BackupPolicy
	// Records holds the records by policy name; a missing name was never seen.
	Records map[string]PolicyRecord
	// Running holds the policies with a run in flight.
	Running map[string]bool
	Now     time.Time
	// RetryAfter is how long after a failed attempt a retry is due; 0 means
	// at once (used by --once).
	RetryAfter time.Duration
}

// ActionType is what an Action does.
type ActionType string

// Action types.
const (
	ActionBackup    ActionType = "Backup"
	ActionRetention ActionType = "Retention"
	ActionDrill     ActionType = "Drill"
)

// Action is one thing to do now.
type Action struct {
	Type   ActionType
	Policy string
	// ScheduledTime is the slot the action is for; the executor records it as
	// LastScheduleTime (backups) so the next plan counts slots from it.
	ScheduledTime time.Time
	Reason        string
}

// PolicyPlan is the decision about one policy's backups.
type PolicyPlan struct {
	Policy string
	// Due is true when a backup action for the policy is in Plan.Actions.
	Due bool
	// NextScheduleTime is the next instant strictly after now at which a
	// backup becomes due (a pending retry or the next slot); zero when
	// suspended, when the schedule is invalid, or when it never fires.
	NextScheduleTime time.Time
	Reason           string
}

// Plan is the outcome of Compute.
type Plan struct {
	// Actions are sorted by policy, then type.
	Actions []Action
	// Policies holds one entry per distinct desired policy.
	Policies map[string]PolicyPlan
	// Wake is the earliest instant strictly after now at which something
	// may become due, or zero if nothing will; the agent may sleep until
	// then unless something else (a file change, a finished run) wakes it.
	Wake time.Time
}

// Reasons in Action.Reason and PolicyPlan.Reason.
const (
	// ReasonFirstRun: the policy never ran; it runs at once.
	ReasonFirstRun = "FirstRun"
	// ReasonScheduled: a slot of the schedule passed since the last run.
	ReasonScheduled = "Scheduled"
	// ReasonRetryAfterFailure: the last attempt failed and RetryAfter passed.
	ReasonRetryAfterFailure = "RetryAfterFailure"
	// ReasonWaitingForSchedule: not due; NextScheduleTime is the next slot.
	ReasonWaitingForSchedule = "WaitingForSchedule"
	// ReasonWaitingForRetry: the last attempt failed; NextScheduleTime is
	// when the retry is due.
	ReasonWaitingForRetry = "WaitingForRetry"
	// ReasonSuspended: spec.suspend is true.
	ReasonSuspended = "Suspended"
	// ReasonRunning: a run of the policy is in flight.
	ReasonRunning = "Running"
	// ReasonInvalidSchedule: spec.schedule does not parse.
	ReasonInvalidSchedule = "InvalidSchedule"
)

// Compute decides what is due in w. It is a pure function of w: it reads no
// clock and keeps no state, so the same World always gives the same Plan (its
// only contact with the host is the time zone database, through
// v1.ParseSchedule).
//
// For each policy, by name (a repeated name is planned once, the first time):
//   - Suspended: no actions, NextScheduleTime zero, reason Suspended.
//   - A schedule that does not parse: no actions, reason InvalidSchedule
//     (validation reports it earlier).
//   - Running (a run in flight): no action of any kind, reason Running, so
//     two runs of one policy never overlap, and retention never prunes
//     beside an upload in progress.
//   - An attempt counts as failed when LastAttemptTime is after
//     LastSuccessfulTime; this includes a run the agent never saw finish.
//   - Never succeeded: a backup is due at once (FirstRun; RetryAfterFailure
//     when an attempt failed), unless an attempt failed less than RetryAfter
//     ago; then it is due at LastAttemptTime+RetryAfter (WaitingForRetry
//     until then). Its ScheduledTime is now: a first run has no slot.
//   - Otherwise slots are counted from base = LastScheduleTime (or
//     LastAttemptTime, or LastSuccessfulTime, the first that is set). If a
//     slot of the current schedule lies in (base, now], one backup is due
//     (Scheduled) for the most recent such slot: after any downtime there is
//     one catch-up run, not one per missed slot. An edited schedule thus
//     applies from the recorded times: it causes a run only if a slot of
//     the new schedule was missed since the last run.
//   - A run that was Interrupted (the agent stopped) is retried at once, as
//     if RetryAfter were zero.
//   - If no slot was missed and the last attempt failed, a retry is due at
//     LastAttemptTime+RetryAfter (RetryAfterFailure, ScheduledTime the slot
//     being retried) if that is before the next slot; otherwise the
//     schedule applies.
//   - NextScheduleTime is the next instant strictly after now at which a
//     backup becomes due: the pending retry, or the next slot (the one after
//     the due slot when due now). A policy not due has reason
//     WaitingForRetry or WaitingForSchedule accordingly.
//   - Retention: when spec.retention is set and the policy has ever
//     succeeded, its schedule (DefaultRetentionSchedule when empty, in the
//     policy's time zone) makes one Retention action due when a slot lies in
//     (LastRetentionTime, now], LastSuccessfulTime standing in for a zero
//     LastRetentionTime. A retention schedule that does not parse is
//     ignored.
//   - Drills: when spec.drills is set and not suspended and the policy has
//     ever succeeded, spec.drills.schedule makes one Drill action due when
//     a slot lies in (LastDrillTime, now], LastSuccessfulTime standing in
//     for a zero LastDrillTime: no catch-up burst, and no drill before
//     there is a snapshot to drill. Not while the policy runs.
//
// Wake is the minimum over policies of the next instant, strictly after now,
// at which a backup, a retry or a retention may become due.
func Compute(w World) Plan {
	p := Plan{Policies: make(map[string]PolicyPlan, len(w.Policies))}
	for _, pol := range w.Policies {
		if pol == nil {
			continue
		}
		name := pol.Metadata.Name
		if _, seen := p.Policies[name]; seen {
			continue
		}
		pp, actions, wake := planPolicy(pol, w.Records[name], w.Running[name], w.Now, w.RetryAfter)
		p.Policies[name] = pp
		p.Actions = append(p.Actions, actions...)
		p.Wake = earliestOf(p.Wake, wake)
	}
	slices.SortFunc(p.Actions, func(a, b Action) int {
		return cmp.Or(cmp.Compare(a.Policy, b.Policy), cmp.Compare(a.Type, b.Type))
	})
	return p
}

// planPolicy plans one policy; wake is zero when nothing of it can become due.
func planPolicy(pol *v1.BackupPolicy, r PolicyRecord, running bool, now time.Time, retryAfter time.Duration) (pp PolicyPlan, actions []Action, wake time.Time) {
	name := pol.Metadata.Name
	pp.Policy = name
	if pol.Spec.Suspend {
		pp.Reason = ReasonSuspended
		return pp, nil, time.Time{}
	}
	sched, err := v1.ParseSchedule(pol.Spec.Schedule, pol.Spec.TimeZone)
	if err != nil {
		pp.Reason = ReasonInvalidSchedule
		return pp, nil, time.Time{}
	}

	b := decideBackup(sched, r, now, retryAfter)
	pp.NextScheduleTime = b.next
	pp.Reason = b.reason
	wake = b.next
	if running {
		pp.Reason = ReasonRunning
	} else if b.due {
		pp.Due = true
		actions = append(actions, Action{Type: ActionBackup, Policy: name, ScheduledTime: b.scheduled, Reason: b.reason})
	}

	if slot, next, ok := decideRetention(pol, r, now); ok {
		wake = earliestOf(wake, next)
		if !slot.IsZero() && !running {
			actions = append(actions, Action{Type: ActionRetention, Policy: name, ScheduledTime: slot, Reason: ReasonScheduled})
		}
	}
	if slot, next, ok := decideDrill(pol, r, now); ok {
		wake = earliestOf(wake, next)
		if !slot.IsZero() && !running {
			actions = append(actions, Action{Type: ActionDrill, Policy: name, ScheduledTime: slot, Reason: ReasonScheduled})
		}
	}
	return pp, actions, wake
}

// decideDrill returns the drill slot due now (zero if none) and the next
// drill slot strictly after now; ok is false when the policy has no
// drills to run.
func decideDrill(pol *v1.BackupPolicy, r PolicyRecord, now time.Time) (slot, next time.Time, ok bool) {
	d := pol.Spec.Drills
	if d == nil || d.Suspend || r.LastSuccessfulTime.IsZero() {
		return time.Time{}, time.Time{}, false
	}
	s, err := v1.ParseSchedule(d.Schedule, pol.Spec.TimeZone)
	if err != nil {
		return time.Time{}, time.Time{}, false
	}
	base := nonZeroOr(r.LastDrillTime, r.LastSuccessfulTime)
	if slot = s.MostRecent(base, now); !slot.IsZero() {
		return slot, s.Next(slot), true
	}
	return time.Time{}, nextSlotAfter(s, base, now), true
}

// PolicyRun is one policy's share of a plan, in the order it runs: its
// Backup, if due, then its Retention, if due, then its Drill, if due. A
// retention due together with a backup waits for it, so that it never
// prunes beside an upload and sees the snapshot just made; a drill waits
// for both, so that it drills the newest snapshot and retention never
// deletes the one it reads. At least one of the three is set.
type PolicyRun struct {
	Policy    string
	Backup    *Action
	Retention *Action
	Drill     *Action
}

// Runs groups the plan's actions by policy, sorted by policy name.
func (p Plan) Runs() []PolicyRun {
	var runs []PolicyRun
	for i := range p.Actions {
		act := &p.Actions[i]
		if len(runs) == 0 || runs[len(runs)-1].Policy != act.Policy {
			runs = append(runs, PolicyRun{Policy: act.Policy})
		}
		r := &runs[len(runs)-1]
		switch act.Type {
		case ActionBackup:
			r.Backup = act
		case ActionRetention:
			r.Retention = act
		case ActionDrill:
			r.Drill = act
		}
	}
	return runs
}

// backupDecision is whether a backup is due now, for which slot, and when
// the next one will be.
type backupDecision struct {
	due       bool
	scheduled time.Time // the ScheduledTime of the run, when due
	next      time.Time // strictly after now; zero if never
	reason    string
}

func decideBackup(s *v1.Schedule, r PolicyRecord, now time.Time, retryAfter time.Duration) backupDecision {
	// Judged from the times rather than LastResult, so that a run the agent
	// never saw finish (a crash, a reboot) is retried like a failed one.
	failed := r.LastAttemptTime.After(r.LastSuccessfulTime)
	retryAt := r.LastAttemptTime.Add(retryAfter)
	if r.LastResult == v1.ResultInterrupted {
		// A run the agent was stopped in the middle of runs again at once.
		retryAt = r.LastAttemptTime
	}

	if r.LastSuccessfulTime.IsZero() {
		// A first run, or a retry of one, is not tied to a slot: slots count
		// from when it starts.
		switch {
		case !failed:
			return backupDecision{due: true, scheduled: now, next: s.Next(now), reason: ReasonFirstRun}
		case retryAt.After(now):
			return backupDecision{next: retryAt, reason: ReasonWaitingForRetry}
		default:
			return backupDecision{due: true, scheduled: now, next: s.Next(now), reason: ReasonRetryAfterFailure}
		}
	}

	base := nonZeroOr(nonZeroOr(r.LastScheduleTime, r.LastAttemptTime), r.LastSuccessfulTime)
	if slot := s.MostRecent(base, now); !slot.IsZero() {
		return backupDecision{due: true, scheduled: slot, next: s.Next(slot), reason: ReasonScheduled}
	}
	nextSlot := nextSlotAfter(s, base, now)
	if failed && (nextSlot.IsZero() || retryAt.Before(nextSlot)) {
		if retryAt.After(now) {
			return backupDecision{next: retryAt, reason: ReasonWaitingForRetry}
		}
		// The retry is for the slot that failed, so the recorded
		// LastScheduleTime does not drift by the retry delay.
		return backupDecision{due: true, scheduled: base, next: nextSlot, reason: ReasonRetryAfterFailure}
	}
	return backupDecision{next: nextSlot, reason: ReasonWaitingForSchedule}
}

// decideRetention returns the retention slot due now (zero if none) and the
// next retention slot strictly after now; ok is false when the policy has no
// scheduled retention.
func decideRetention(pol *v1.BackupPolicy, r PolicyRecord, now time.Time) (slot, next time.Time, ok bool) {
	if pol.Spec.Retention == nil || r.LastSuccessfulTime.IsZero() {
		return time.Time{}, time.Time{}, false
	}
	expr := cmp.Or(pol.Spec.Retention.Schedule, DefaultRetentionSchedule)
	s, err := v1.ParseSchedule(expr, pol.Spec.TimeZone)
	if err != nil {
		return time.Time{}, time.Time{}, false
	}
	base := nonZeroOr(r.LastRetentionTime, r.LastSuccessfulTime)
	if slot = s.MostRecent(base, now); !slot.IsZero() {
		return slot, s.Next(slot), true
	}
	return time.Time{}, nextSlotAfter(s, base, now), true
}

// nonZeroOr returns t, or def when t is zero.
func nonZeroOr(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}

// nextSlotAfter returns the first slot after base, which is after now when
// no slot lies in (base, now]. Counting from base rather than now keeps the
// cadence of @every schedules. The fallback covers a base older than
// MostRecent's look-back.
func nextSlotAfter(s *v1.Schedule, base, now time.Time) time.Time {
	if t := s.Next(base); t.After(now) {
		return t
	}
	return s.Next(now)
}

// earliestOf returns the earlier of a and b, a zero time standing for
// "never".
func earliestOf(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero(), a.Before(b):
		return a
	}
	return b
}
