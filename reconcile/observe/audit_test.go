package observe

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func readAudit(t *testing.T, dir string) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, AuditLogName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestAuditRecordFillsTheCommonFields(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	al, err := OpenAudit(dir, LogLimits{}, "host1", "alice", func() time.Time { return at })
	if err != nil {
		t.Fatal(err)
	}
	if err := al.Record(AuditEvent{Action: AuditKeyGenerated, Object: "Key/age-1", Outcome: OutcomeSuccess, KeyID: "age-1"}); err != nil {
		t.Fatal(err)
	}
	al.Close()
	lines := readAudit(t, dir)
	if len(lines) != 1 {
		t.Fatalf("%d lines", len(lines))
	}
	got := lines[0]
	for k, want := range map[string]any{
		"time": "2026-03-01T09:00:00Z", "host": "host1", "actor": "alice", "action": "key.generated",
		"object": "Key/age-1", "outcome": "success", "keyId": "age-1", "pid": float64(os.Getpid()),
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	for _, k := range []string{"policy", "message", "bytes"} {
		if _, ok := got[k]; ok {
			t.Errorf("empty field %s written", k)
		}
	}
}

func TestAuditLinesOfConcurrentWritersNeverInterleave(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	for w := range 4 {
		al, err := OpenAudit(dir, LogLimits{}, "h", "agent", nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer al.Close()
			for i := range 50 {
				al.Record(AuditEvent{Action: AuditBackupPublished, Object: "BackupPolicy/p", Outcome: OutcomeSuccess, Bytes: int64(w*1000 + i)})
			}
		}()
	}
	wg.Wait()
	if n := len(readAudit(t, dir)); n != 200 {
		t.Errorf("%d lines, want 200", n)
	}
}

func TestNilAuditLogRecordsNothing(t *testing.T) {
	var al *AuditLog
	if err := al.Record(AuditEvent{Action: AuditRestoreRun}); err != nil {
		t.Error(err)
	}
}

func TestActorFrom(t *testing.T) {
	users := map[string]string{"0": "root", "1000": "alice"}
	lookup := func(uid string) (string, bool) { n, ok := users[uid]; return n, ok }
	for _, c := range []struct {
		sudo, loginUID string
		euid           int
		want           string
	}{
		{"bob", "1000", 0, "bob"},            // sudo names who ran it
		{"", "1000", 0, "alice"},             // su keeps the login UID
		{"", "4294967295", 0, "root"},        // no login session: the effective user
		{"", "", 1000, "alice"},              // no /proc/self/loginuid
		{"", "2000", 0, "uid:2000"},          // a login UID without a name
		{"", "4294967295", 3000, "uid:3000"}, // nor an effective user with one
	} {
		if got := actorFrom(c.sudo, c.loginUID, lookup, c.euid); got != c.want {
			t.Errorf("actorFrom(%q, %q, %d) = %q, want %q", c.sudo, c.loginUID, c.euid, got, c.want)
		}
	}
}
