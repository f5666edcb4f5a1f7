package drill

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
)

// cancelling cancels a context when a data object is first read: a drill
// cut short (SIGTERM) in the middle of a restore.
type cancelling struct {
	drivers.Destination
	cancel func()
}

func (c cancelling) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := c.Destination.Get(ctx, key)
	if err == nil && !isManifest(key) {
		c.cancel()
	}
	return rc, err
}

func isManifest(key string) bool {
	return len(key) >= len(v1.ManifestName) && key[len(key)-len(v1.ManifestName):] == v1.ManifestName
}

func TestCancelledDrillLeavesNothing(t *testing.T) {
	now := time.Now()
	e := newEnv(t, v1.Source{Name: "site", Files: &v1.FilesSource{Paths: []string{liveTree(t, now)}}})
	e.backup(now)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := e.options()
	open := opts.Open
	opts.Open = func(ctx context.Context, name string) (drivers.Destination, error) {
		d, err := open(ctx, name)
		return cancelling{Destination: d, cancel: cancel}, err
	}
	res, err := Run(ctx, e.policy, opts)
	if err == nil || !strings.Contains(err.Error(), context.Canceled.Error()) || res.Result != v1.ResultFailed {
		t.Fatalf("err = %v, result %s; want a failed drill, cancelled", err, res.Result)
	}
	e.assertClean()
}

func TestDrillEventsAndObjectives(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	p := &v1.BackupPolicy{Spec: v1.BackupPolicySpec{Sources: []v1.Source{{Name: "a"}, {Name: "b"}},
		Objectives: &v1.Objectives{RPO: "1h", RTO: "30m"}}}
	for _, tc := range []struct {
		name   string
		newest map[string]time.Time
		last   *v1.DrillResult
		status string
		msg    string
	}{
		{"met", map[string]time.Time{"a": now.Add(-10 * time.Minute), "b": now.Add(-59 * time.Minute)}, &v1.DrillResult{MeasuredRTO: "29m"},
			v1.ConditionTrue, "achieved RPO and measured RTO within the objectives"},
		{"missed", map[string]time.Time{"a": now.Add(-2 * time.Hour)}, &v1.DrillResult{MeasuredRTO: "45m"},
			v1.ConditionFalse, "source a: newest good snapshot is 2h0m0s old, RPO 1h; source b has no good snapshot; measured RTO 45m0s exceeds the RTO 30m"},
		{"no drill yet", map[string]time.Time{"a": now, "b": now}, nil,
			v1.ConditionFalse, "no restore drill has measured the RTO yet"},
	} {
		st, c := Objectives(p, tc.newest, tc.last, now)
		if c == nil || c.Status != tc.status || c.Message != tc.msg {
			t.Errorf("%s: condition %+v, want %s %q", tc.name, c, tc.status, tc.msg)
		}
		if st == nil || st.RPO != "1h" || st.RTO != "30m" {
			t.Errorf("%s: status %+v", tc.name, st)
		}
	}
	if st, c := Objectives(&v1.BackupPolicy{}, nil, nil, now); st != nil || c != nil {
		t.Errorf("no objectives: %+v %+v", st, c)
	}
	if got := scaleRTO(10*time.Second, 2*time.Second, 100, 1000); got != 28*time.Second {
		t.Errorf("scaleRTO = %s, want 28s (8s of reading, 2s of writing a tenth)", got)
	}
}
