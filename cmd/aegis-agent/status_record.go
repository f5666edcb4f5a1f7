package main

import (
	"os"
	"path/filepath"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile"
)

// recordedStatus is the status of a policy as the state store recorded it,
// for a policy whose sidecar entry is gone (its manifest file no longer
// parses, so the agent no longer knows which file it belongs to).
func recordedStatus(stateDir, name string) (v1.ObjectStatus, bool) {
	if stateDir == "" {
		return v1.ObjectStatus{}, false
	}
	if _, err := os.Stat(filepath.Join(stateDir, "state.db")); err != nil {
		return v1.ObjectStatus{}, false
	}
	st, err := reconcile.OpenStore(stateDir)
	if err != nil {
		return v1.ObjectStatus{}, false
	}
	recs, err := st.Records()
	if err != nil {
		return v1.ObjectStatus{}, false
	}
	r, ok := recs[v1.KindBackupPolicy+"/"+name]
	if !ok {
		return v1.ObjectStatus{}, false
	}
	out := v1.ObjectStatus{LastRun: r.LastRun, LastRetention: r.LastRetention}
	if t := r.Policy.LastSuccessfulTime; !t.IsZero() {
		out.LastSuccessfulTime = &t
	}
	return out, true
}
