package reconcile

import (
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

func withDrills(schedule string, suspend bool) func(*v1.BackupPolicy) {
	return func(p *v1.BackupPolicy) { p.Spec.Drills = &v1.Drills{Schedule: schedule, Suspend: suspend} }
}

func drilledAt(r PolicyRecord, t time.Time) PolicyRecord {
	r.LastDrillTime = t
	return r
}

func TestComputeDrills(t *testing.T) {
	daily := "0 3 * * *" // the drill schedule; backups hourly
	for _, tc := range []struct {
		name     string
		pol      *v1.BackupPolicy
		rec      PolicyRecord
		running  bool
		now      time.Time
		wantSlot time.Time // zero: no drill due
		wantWake time.Time
	}{
		{"never backed up: nothing to drill", policy("p", "@hourly", withDrills(daily, false)), PolicyRecord{}, false, utc(15, 4, 0), time.Time{}, utc(15, 5, 0)},
		{"first slot after the first success", policy("p", "@hourly", withDrills(daily, false)), succeeded(utc(14, 23, 0)), false, utc(15, 3, 30), utc(15, 3, 0), utc(15, 4, 0)},
		{"drilled this slot already", policy("p", "@hourly", withDrills(daily, false)), drilledAt(succeeded(utc(15, 3, 0)), utc(15, 3, 0)), false, utc(15, 3, 50), time.Time{}, utc(15, 4, 0)},
		{"days of downtime: one drill, not a burst", policy("p", "@hourly", withDrills(daily, false)), drilledAt(succeeded(utc(10, 3, 0)), utc(10, 3, 0)), false, utc(15, 12, 0), utc(15, 3, 0), utc(15, 13, 0)},
		{"running: no drill", policy("p", "@hourly", withDrills(daily, false)), succeeded(utc(14, 23, 0)), true, utc(15, 3, 30), time.Time{}, utc(15, 4, 0)},
		{"suspended drills", policy("p", "@hourly", withDrills(daily, true)), succeeded(utc(14, 23, 0)), false, utc(15, 3, 30), time.Time{}, utc(15, 4, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := World{Policies: []*v1.BackupPolicy{tc.pol}, Records: map[string]PolicyRecord{"p": tc.rec}, Running: map[string]bool{"p": tc.running}, Now: tc.now}
			plan := Compute(w)
			var got time.Time
			for _, a := range plan.Actions {
				if a.Type == ActionDrill {
					got = a.ScheduledTime
				}
			}
			if !got.Equal(tc.wantSlot) {
				t.Errorf("drill slot %v, want %v", got, tc.wantSlot)
			}
			if !plan.Wake.Equal(tc.wantWake) {
				t.Errorf("wake %v, want %v", plan.Wake, tc.wantWake)
			}
			if runs := plan.Runs(); !tc.wantSlot.IsZero() && (len(runs) != 1 || runs[0].Drill == nil) {
				t.Errorf("runs %+v lack the drill", runs)
			}
		})
	}
}
