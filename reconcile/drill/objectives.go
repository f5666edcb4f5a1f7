package drill

import (
	"fmt"
	"strings"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// scaleRTO estimates a full restore from a drill that wrote only a sample
// to disk: everything was fetched, decrypted and hashed, so that part
// counts once; the time spent writing the sample grows with the bytes left
// unwritten.
func scaleRTO(elapsed, writeTime time.Duration, written, total int64) time.Duration {
	if written <= 0 || total <= written {
		return elapsed.Round(time.Millisecond)
	}
	scaled := elapsed - writeTime + time.Duration(float64(writeTime)*float64(total)/float64(written))
	return scaled.Round(time.Millisecond)
}

// totalRTO adds up the sources' measured RTO: a full restore brings them
// back one after the other.
func totalRTO(srcs []v1.DrillSourceResult) string {
	var total time.Duration
	for _, s := range srcs {
		d, err := time.ParseDuration(s.MeasuredRTO)
		if err != nil {
			d, _ = time.ParseDuration(s.RestoreDuration)
		}
		total += d
	}
	if total == 0 {
		return ""
	}
	return total.String()
}

// overall is the drill's result from its sources'.
func overall(srcs []v1.DrillSourceResult, err error) string {
	if err != nil || len(srcs) == 0 {
		return v1.ResultFailed
	}
	ok := 0
	for _, s := range srcs {
		if s.Result == v1.ResultSucceeded {
			ok++
		}
	}
	switch ok {
	case len(srcs):
		return v1.ResultSucceeded
	case 0:
		return v1.ResultFailed
	}
	return v1.ResultPartiallyFailed
}

func sourceErrors(srcs []v1.DrillSourceResult) string {
	var parts []string
	for _, s := range srcs {
		if s.Error != "" {
			parts = append(parts, fmt.Sprintf("source %s: %s", s.Name, s.Error))
		}
	}
	return strings.Join(parts, "; ")
}

// RestorableCondition is the Restorable condition a drill result sets.
func RestorableCondition(res *v1.DrillResult, now time.Time) v1.Condition {
	c := v1.Condition{Type: v1.ConditionRestorable, LastTransitionTime: now}
	switch {
	case res == nil:
		c.Status, c.Reason, c.Message = v1.ConditionUnknown, "NoDrill", "no restore drill has run yet"
	case res.Result == v1.ResultSucceeded:
		c.Status, c.Reason = v1.ConditionTrue, "DrillSucceeded"
		c.Message = fmt.Sprintf("drill %s restored and checked %d source(s) in %s", res.ID, len(res.Sources), res.Duration)
	default:
		c.Status, c.Reason, c.Message = v1.ConditionFalse, "DrillFailed", res.Error
	}
	return c
}

// Objectives compares what was achieved with the policy's objectives:
// the achieved RPO is the age of the newest good snapshot of each source
// (newest maps source → its time; a source without one misses the RPO),
// the measured RTO that of the last drill. It returns the status and the
// ObjectivesMet condition; both are nil when the policy sets no
// objectives.
func Objectives(p *v1.BackupPolicy, newest map[string]time.Time, last *v1.DrillResult, now time.Time) (*v1.ObjectivesStatus, *v1.Condition) {
	ob := p.Spec.Objectives
	if ob == nil || (ob.RPO == "" && ob.RTO == "") {
		return nil, nil
	}
	rpo, rto := ob.Parse()
	st := &v1.ObjectivesStatus{RPO: ob.RPO, RTO: ob.RTO, AchievedRPO: map[string]string{}}
	var missed []string
	for _, src := range p.Spec.Sources {
		t, ok := newest[src.Name]
		if !ok {
			st.AchievedRPO[src.Name] = "none"
			if rpo > 0 {
				missed = append(missed, fmt.Sprintf("source %s has no good snapshot", src.Name))
			}
			continue
		}
		age := now.Sub(t).Round(time.Second)
		st.AchievedRPO[src.Name] = age.String()
		if rpo > 0 && age > rpo {
			missed = append(missed, fmt.Sprintf("source %s: newest good snapshot is %s old, RPO %s", src.Name, age, ob.RPO))
		}
	}
	if last != nil {
		st.MeasuredRTO = last.MeasuredRTO
	}
	if rto > 0 {
		d, err := time.ParseDuration(st.MeasuredRTO)
		switch {
		case err != nil:
			missed = append(missed, "no restore drill has measured the RTO yet")
		case d > rto:
			missed = append(missed, fmt.Sprintf("measured RTO %s exceeds the RTO %s", d, ob.RTO))
		}
	}
	c := &v1.Condition{Type: v1.ConditionObjectivesMet, Status: v1.ConditionTrue, Reason: "ObjectivesMet", LastTransitionTime: now,
		Message: "achieved RPO and measured RTO within the objectives"}
	if len(missed) > 0 {
		c.Status, c.Reason, c.Message = v1.ConditionFalse, "ObjectivesMissed", strings.Join(missed, "; ")
	}
	return st, c
}
