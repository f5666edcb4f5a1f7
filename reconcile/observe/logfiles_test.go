package observe

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// stepClock returns a clock that advances by step at every reading.
func stepClock(start time.Time, step time.Duration) func() time.Time {
	t := start
	return func() time.Time {
		t = t.Add(step)
		return t
	}
}

func TestParseByteSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{"512", 512, false}, {"0", 0, false}, {"64KiB", 64 << 10, false}, {"10MiB", 10 << 20, false},
		{"10M", 10 << 20, false}, {"1G", 1 << 30, false}, {"2 GiB", 2 << 30, false}, {"7B", 7, false},
		{"", 0, true}, {"ten", 0, true}, {"-1", 0, true}, {"1.5G", 0, true}, {"10MB5", 0, true},
	} {
		got, err := ParseByteSize(c.in)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d, error %v", c.in, got, err, c.want, c.bad)
		}
	}
}

func TestLogLimitsCheck(t *testing.T) {
	if err := (LogLimits{MaxSize: 10 << 20, MaxTotal: 20 << 20}).Check(); err == nil {
		t.Error("a total bound of twice the rotation size was accepted")
	}
	if err := (LogLimits{}).Check(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// logFiles lists the regular files of dir (not the lock) with their sizes.
func logFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == rotateLockName {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fi.Size()
	}
	return out
}

func TestRotatingFileRotatesAtItsBoundAndLosesNothing(t *testing.T) {
	dir := t.TempDir()
	clock := stepClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Second)
	r, err := OpenRotating(dir, AgentLogName, LogLimits{MaxSize: 100, MaxFiles: 100, MaxTotal: 1 << 20}, clock)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 20 {
		line := fmt.Sprintf("line %02d %s\n", i, strings.Repeat("x", 20))
		want = append(want, line)
		if _, err := r.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	files := logFiles(t, dir)
	var names []string
	for n, size := range files {
		if size > 100 {
			t.Errorf("%s has %d bytes, over the bound of 100", n, size)
		}
		if n != AgentLogName {
			names = append(names, n)
		}
	}
	if len(names) < 5 {
		t.Fatalf("rotated copies: %v", names)
	}
	// The rotated names sort by time; the live file comes last.
	sort.Strings(names)
	names = append(names, AgentLogName)
	var got strings.Builder
	for _, n := range names {
		if !strings.HasPrefix(n, "agent.") || !strings.HasSuffix(n, ".log") {
			t.Errorf("rotated copy named %q", n)
		}
		b, _ := os.ReadFile(filepath.Join(dir, n))
		got.Write(b)
	}
	if got.String() != strings.Join(want, "") {
		t.Errorf("the files joined in order differ from what was written:\n%s", got.String())
	}
}

func TestRotatingFileFollowsARotationByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	clock := stepClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Second)
	limits := LogLimits{MaxSize: 50, MaxTotal: 1 << 20}
	a, _ := OpenRotating(dir, AuditLogName, limits, clock)
	b, _ := OpenRotating(dir, AuditLogName, limits, clock)
	defer a.Close()
	defer b.Close()
	a.Write([]byte(strings.Repeat("a", 40) + "\n"))
	a.Write([]byte(strings.Repeat("a", 40) + "\n")) // rotates
	b.Write([]byte("b\n"))                          // must land in the new live file
	live, err := os.ReadFile(filepath.Join(dir, AuditLogName))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(live), strings.Repeat("a", 40)+"\nb\n"; got != want {
		t.Errorf("live file = %q, want %q", got, want)
	}
}

func writeFile(t *testing.T, dir, name string, size int, mod time.Time) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(strings.Repeat("x", size)), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mod, mod); err != nil {
		t.Fatal(err)
	}
}

func TestPruneLogDir(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	dir := t.TempDir()
	limits := LogLimits{MaxSize: 1000, MaxFiles: 2, MaxAge: 30 * day, MaxTotal: 10_000}
	// Live files: never removed.
	writeFile(t, dir, AgentLogName, 900, now.Add(-400*day))
	writeFile(t, dir, AuditLogName, 900, now.Add(-400*day))
	// Run logs: one too old, two recent.
	writeFile(t, dir, "backup-web-20260101T000000Z.log", 100, now.Add(-40*day))
	writeFile(t, dir, "backup-web-20260530T000000Z.log", 100, now.Add(-2*day))
	writeFile(t, dir, "backup-web-20260531T000000Z.log", 100, now.Add(-1*day))
	// An old run log still being written (a run in progress).
	inUse, err := CreateRunLog(dir, "backup-db-20260401T000000Z.log")
	if err != nil {
		t.Fatal(err)
	}
	defer inUse.Close()
	os.Chtimes(inUse.Name(), now.Add(-60*day), now.Add(-60*day))
	// Rotated agent logs: three, only two kept.
	writeFile(t, dir, "agent.20260501T000000.000Z.log", 1000, now.Add(-31*day+time.Hour))
	writeFile(t, dir, "agent.20260510T000000.000Z.log", 1000, now.Add(-20*day))
	writeFile(t, dir, "agent.20260520T000000.000Z.log", 1000, now.Add(-10*day))
	// Rotated audit logs: exempt from age and count.
	writeFile(t, dir, "audit.20250101T000000.000Z.jsonl", 1000, now.Add(-500*day))
	writeFile(t, dir, "audit.20250601T000000.000Z.jsonl", 1000, now.Add(-360*day))
	// Not ours.
	writeFile(t, dir, "notes.txt", 5000, now.Add(-900*day))

	res, err := PruneLogDir(dir, limits, now)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(res.Removed)
	want := []string{"agent.20260501T000000.000Z.log", "backup-web-20260101T000000Z.log"}
	if strings.Join(res.Removed, " ") != strings.Join(want, " ") {
		t.Errorf("removed %v, want %v", res.Removed, want)
	}
	left := logFiles(t, dir)
	for _, keep := range []string{AgentLogName, AuditLogName, "backup-db-20260401T000000Z.log", "audit.20250101T000000.000Z.jsonl", "notes.txt"} {
		if _, ok := left[keep]; !ok {
			t.Errorf("%s was removed", keep)
		}
	}

	// Under pressure: the oldest go first, audit copies last, live files
	// and the run in progress never.
	limits.MaxTotal = 4000
	res, err = PruneLogDir(dir, limits, now)
	if err != nil {
		t.Fatal(err)
	}
	if res.Total > limits.MaxTotal {
		t.Errorf("total %d over the bound %d", res.Total, limits.MaxTotal)
	}
	left = logFiles(t, dir)
	for _, keep := range []string{AgentLogName, AuditLogName, "backup-db-20260401T000000Z.log", "notes.txt"} {
		if _, ok := left[keep]; !ok {
			t.Errorf("%s was removed under pressure", keep)
		}
	}
	if _, ok := left["audit.20250601T000000.000Z.jsonl"]; !ok {
		t.Errorf("the newer audit copy went while the total could fit it: left %v", left)
	}
	if _, ok := left["agent.20260520T000000.000Z.log"]; ok {
		t.Errorf("a rotated agent log was kept over an audit copy: left %v", left)
	}
}

func TestPruneRotatesAnOversizedLiveFile(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	writeFile(t, dir, RetentionLogName, 2000, now.Add(-time.Hour))
	if _, err := PruneLogDir(dir, LogLimits{MaxSize: 1000}, now); err != nil {
		t.Fatal(err)
	}
	left := logFiles(t, dir)
	if _, ok := left[RetentionLogName]; ok {
		t.Errorf("retention.log over its bound was not rotated: %v", left)
	}
	if _, ok := left["retention.20260601T120000.000Z.log"]; !ok {
		t.Errorf("no rotated copy: %v", left)
	}
}

// TestLogDirStaysUnderItsBound simulates months of hourly runs, each writing
// a run log, agent log lines and audit lines, and checks after every run
// that the directory fits its bound.
func TestLogDirStaysUnderItsBound(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	clock := func() time.Time { return now }
	limits := LogLimits{MaxSize: 4 << 10, MaxFiles: 3, MaxAge: 7 * 24 * time.Hour, MaxTotal: 64 << 10}
	agentLog, _ := OpenRotating(dir, AgentLogName, limits, clock)
	audit, _ := OpenAudit(dir, limits, "h", "agent", clock)
	defer agentLog.Close()
	defer audit.Close()
	maxSeen := int64(0)
	for i := range 24 * 60 {
		now = start.Add(time.Duration(i) * time.Hour)
		rl, err := CreateRunLog(dir, fmt.Sprintf("backup-web-%s.log", now.Format("20060102T150405Z")))
		if err != nil {
			t.Fatal(err)
		}
		rl.WriteString(strings.Repeat("run log line\n", 40))
		rl.Close()
		os.Chtimes(rl.Name(), now, now)
		for range 5 {
			agentLog.Write([]byte(`{"msg":"agent line","i":` + fmt.Sprint(i) + "}\n"))
		}
		audit.Record(AuditEvent{Action: AuditBackupPublished, Object: "BackupPolicy/web", Outcome: OutcomeSuccess})
		res, err := PruneLogDir(dir, limits, now)
		if err != nil {
			t.Fatal(err)
		}
		if res.Total > limits.MaxTotal {
			t.Fatalf("after run %d the directory holds %d bytes, over %d", i, res.Total, limits.MaxTotal)
		}
		var total int64
		for _, size := range logFiles(t, dir) {
			total += size
		}
		maxSeen = max(maxSeen, total)
	}
	if maxSeen > limits.MaxTotal {
		t.Errorf("the directory reached %d bytes, over %d", maxSeen, limits.MaxTotal)
	}
	t.Logf("60 days of hourly runs: at most %d bytes of %d", maxSeen, limits.MaxTotal)
}
