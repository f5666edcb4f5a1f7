package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

func TestAgentWatchesConfigDirectory(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	cmd := e.command("--log-format", "json")
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	}()

	statusPath := filepath.Join(e.config, "p.status.yaml")
	readyCond := func() *v1.Condition {
		if _, err := os.Stat(statusPath); err != nil {
			return nil
		}
		for _, it := range e.status("p.yaml").Items {
			if it.Kind == v1.KindBackupPolicy {
				return v1.FindCondition(it.Status.Conditions, v1.ConditionReady)
			}
		}
		return nil
	}

	// A new manifest is picked up without a restart and, never having
	// succeeded, runs at once.
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+smallPolicy("p", "disk"))
	waitFor(t, "the first backup", 30*time.Second, func() bool {
		c := readyCond()
		return c != nil && c.Status == v1.ConditionTrue
	})
	if n := len(manifestsUnder(t, filepath.Join(e.root, "backups"))); n != 1 {
		t.Fatalf("%d snapshots after the first run, want 1", n)
	}

	// An invalid edit keeps the last valid version and says so.
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+strings.Replace(smallPolicy("p", "disk"), "@daily", "every day", 1))
	waitFor(t, "the invalid edit in the status", 30*time.Second, func() bool {
		for _, it := range e.status("p.yaml").Items {
			if it.Kind == v1.KindBackupPolicy {
				c := v1.FindCondition(it.Status.Conditions, v1.ConditionValid)
				return c != nil && c.Status == v1.ConditionFalse && strings.Contains(c.Message, "the last valid version keeps running")
			}
		}
		return false
	})
	st := entry(t, e.status("p.yaml"), v1.KindBackupPolicy, "p")
	if st.NextScheduleTime == nil {
		t.Errorf("the last valid version is no longer scheduled: %+v", st)
	}

	// A file that no longer parses at all keeps its objects' last valid
	// version too, and says why.
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+smallPolicy("p", "disk")+"  broken: [\n")
	waitFor(t, "the syntax error in the status", 30*time.Second, func() bool {
		for _, it := range e.status("p.yaml").Items {
			if it.Kind == v1.KindBackupPolicy {
				c := v1.FindCondition(it.Status.Conditions, v1.ConditionValid)
				return c != nil && c.Status == v1.ConditionFalse && strings.Contains(c.Message, "yaml:") &&
					strings.Contains(c.Message, "the last valid version keeps running") && it.Status.NextScheduleTime != nil
			}
		}
		return false
	})

	// A removed manifest stops being scheduled; its backups stay.
	os.Remove(filepath.Join(e.config, "p.yaml"))
	waitFor(t, "the status sidecar of a removed manifest to go", 30*time.Second, func() bool {
		_, err := os.Stat(statusPath)
		return os.IsNotExist(err)
	})
	if n := len(manifestsUnder(t, filepath.Join(e.root, "backups"))); n != 1 {
		t.Errorf("%d snapshots after removing the policy, want 1", n)
	}

	// SIGTERM stops it cleanly.
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("agent exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("agent did not stop on SIGTERM\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `"msg":"agent stopped"`) {
		t.Errorf("log lacks the clean stop:\n%s", logs.String())
	}
}

func TestSIGTERMAbandonsRunInFlight(t *testing.T) {
	e := newEnv(t)
	// A large sparse file keeps the run busy for a while.
	os.MkdirAll(filepath.Join(e.root, "src"), 0o755)
	big, err := os.Create(filepath.Join(e.root, "src", "huge.img"))
	if err != nil {
		t.Fatal(err)
	}
	big.Truncate(64 << 30)
	big.Close()
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+smallPolicy("p", "disk"))

	cmd := e.command("--log-format", "json")
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitFor(t, "the run to start", 30*time.Second, func() bool {
		return strings.Contains(logs.String(), `"msg":"source started"`)
	})
	// Wait until the upload has begun on the destination (its temporary
	// file exists), then stop the agent.
	waitFor(t, "the upload to start", 30*time.Second, func() bool {
		var found bool
		filepath.Walk(filepath.Join(e.root, "backups"), func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				found = true
			}
			return nil
		})
		return found
	})
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("agent exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("agent did not stop on SIGTERM\n%s", logs.String())
	}
	// Nothing partial is published, and no data is left behind.
	var left []string
	filepath.Walk(filepath.Join(e.root, "backups"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("files left on the destination after an abandoned run: %v", left)
	}
	// A clean stop is not a failure: the run is Interrupted, the policy
	// is not Failing, and the next start runs it again at once.
	st := entry(t, e.status("p.yaml"), v1.KindBackupPolicy, "p")
	if st.LastRun == nil || st.LastRun.Result != v1.ResultInterrupted || st.LastSuccessfulTime != nil {
		t.Fatalf("status after an abandoned run: %+v", st.LastRun)
	}
	if c := condition(t, st, v1.ConditionReady); c.Status != v1.ConditionUnknown || c.Reason != "Interrupted" {
		t.Errorf("Ready condition after a clean stop: %+v, want Unknown/Interrupted", c)
	}
	for _, s := range st.LastRun.Sources {
		if strings.Contains(s.Error, "context canceled") {
			t.Errorf("source %s says %q", s.Name, s.Error)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer process and a reader test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
