package reconcile

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aegis-backup/aegis/reconcile/atomicfile"

	"sigs.k8s.io/yaml"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile/drill"
	"github.com/aegis-backup/aegis/reconcile/observe"
)

// StatusPath returns the sidecar of a manifest file: NAME.status.yaml
// beside it, or in statusDir when one is set.
func StatusPath(manifestFile, statusDir string) string {
	base := filepath.Base(manifestFile)
	base = strings.TrimSuffix(base, filepath.Ext(base)) + ".status.yaml"
	if statusDir != "" {
		return filepath.Join(statusDir, base)
	}
	return filepath.Join(filepath.Dir(manifestFile), base)
}

// ReadStatusFile reads a sidecar; a missing one is empty.
func ReadStatusFile(path string) (*v1.StatusFile, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return &v1.StatusFile{}, nil
	}
	if err != nil {
		return nil, err
	}
	var sf v1.StatusFile
	if err := yaml.Unmarshal(data, &sf); err != nil {
		return nil, fmt.Errorf("status file %s: %w", path, err)
	}
	return &sf, nil
}

const statusHeader = "# Written by aegis-agent: the observed state of the objects in the manifest file beside it.\n# Do not edit; it is rewritten after every reconcile.\n"

// WriteStatusFile writes a sidecar atomically: a temporary file in the same
// directory, fsync, rename, so a reader never sees half a file. It writes
// nothing when the content is unchanged.
func WriteStatusFile(path string, sf *v1.StatusFile) error {
	body, err := yaml.Marshal(sf)
	if err != nil {
		return err
	}
	body = append([]byte(statusHeader), body...)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, body) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, body, 0o644)
}

// statusInput is everything an object's status is computed from.
type statusInput struct {
	obj         *v1.Object
	errs        v1.ErrorList
	rec         ObjectRecord
	next        time.Time
	unsupported []string
	// lastValidRunning: the manifest is invalid but the agent keeps running
	// the last valid version it saw.
	lastValidRunning bool
	now              time.Time
	// notifications: the last delivery of each of a policy's channels.
	notifications map[string]v1.NotificationStatus
	// sourceSuccess is when each source of a policy last succeeded: its
	// newest good snapshot, for the achieved RPO.
	sourceSuccess map[string]time.Time
}

// buildStatus computes an object's status, keeping the transition times
// of conditions whose status did not change.
func buildStatus(prev v1.ObjectStatus, in statusInput) v1.ObjectStatus {
	st := v1.ObjectStatus{ObservedGeneration: in.rec.Generation, Conditions: prev.Conditions}
	set := func(typ, status, reason, msg string) {
		st.Conditions = v1.SetCondition(st.Conditions, v1.Condition{
			Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: in.now.UTC(),
		})
	}
	if len(in.errs) > 0 {
		var msgs []string
		for _, e := range in.errs {
			msgs = append(msgs, e.Error())
		}
		msg := strings.Join(msgs, "; ")
		if in.lastValidRunning {
			msg += " (the last valid version keeps running)"
		}
		set(v1.ConditionValid, v1.ConditionFalse, "InvalidManifest", msg)
	} else {
		set(v1.ConditionValid, v1.ConditionTrue, "Validated", "")
	}
	if len(in.unsupported) > 0 {
		set(v1.ConditionSupported, v1.ConditionFalse, "DriverNotSupported", strings.Join(in.unsupported, "; "))
	} else {
		set(v1.ConditionSupported, v1.ConditionTrue, "Supported", "")
	}

	switch in.obj.Kind {
	case v1.KindBackupPolicy:
		pr := in.rec.Policy
		st.LastScheduleTime = timePtr(pr.LastScheduleTime)
		st.LastSuccessfulTime = timePtr(pr.LastSuccessfulTime)
		st.NextScheduleTime = timePtr(in.next)
		st.LastRun = in.rec.LastRun
		st.LastRetention = in.rec.LastRetention
		for _, ch := range slices.Sorted(maps.Keys(in.notifications)) {
			st.Notifications = append(st.Notifications, in.notifications[ch])
		}
		switch {
		case in.obj.Policy != nil && in.obj.Policy.Spec.Suspend:
			set(v1.ConditionReady, v1.ConditionUnknown, "Suspended", "spec.suspend is true: no backup is scheduled")
		case in.rec.LastRun == nil:
			set(v1.ConditionReady, v1.ConditionUnknown, "NeverRun", "no backup has run yet")
		case in.rec.LastRun.Result == v1.ResultInterrupted:
			set(v1.ConditionReady, v1.ConditionUnknown, "Interrupted",
				"the last backup was interrupted (the agent was stopped); it runs again when the agent starts")
		case in.rec.LastRun.Result == v1.ResultSucceeded:
			set(v1.ConditionReady, v1.ConditionTrue, "BackupSucceeded",
				fmt.Sprintf("snapshot %s stored on %d destination(s)", in.rec.LastRun.SnapshotID, len(in.rec.LastRun.Destinations)))
		default:
			reason := "BackupFailed"
			if in.rec.LastRun.Result == v1.ResultPartiallyFailed {
				reason = "BackupPartiallyFailed"
			}
			set(v1.ConditionReady, v1.ConditionFalse, reason, observe.RunErrors(in.rec.LastRun))
		}
		drillStatus(&st, in)
	case v1.KindDestination:
		if in.rec.Checked {
			st.LastCheckTime = timePtr(in.rec.LastCheckTime)
			if in.rec.CheckError == "" {
				set(v1.ConditionReachable, v1.ConditionTrue, "CheckSucceeded", "")
			} else {
				set(v1.ConditionReachable, v1.ConditionFalse, "CheckFailed", in.rec.CheckError)
			}
		} else {
			set(v1.ConditionReachable, v1.ConditionUnknown, "NotChecked", "no backup has used this destination yet")
		}
	}
	return st
}

// drillStatus adds the last restore drill, the Restorable condition and
// the recovery objectives to a policy's status.
func drillStatus(st *v1.ObjectStatus, in statusInput) {
	p, last := in.obj.Policy, in.rec.Policy.LastDrill
	if p == nil {
		return
	}
	st.LastDrill = last
	if p.Spec.Drills != nil || last != nil {
		st.Conditions = v1.SetCondition(st.Conditions, drill.RestorableCondition(last, in.now.UTC()))
	}
	var ok *v1.Condition
	st.Objectives, ok = drill.Objectives(p, in.sourceSuccess, last, in.now.UTC())
	if ok != nil {
		st.Conditions = v1.SetCondition(st.Conditions, *ok)
	}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
