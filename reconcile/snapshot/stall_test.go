package snapshot

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile/observe"
	"github.com/aegis-backup/aegis/test/testenv"
)

// stopAfter is a Progress that freezes a process (SIGSTOP) once the
// destination item has taken more than n bytes.
type stopAfter struct {
	item string
	n    int64
	pid  int
	mu   sync.Mutex
	got  int64
	done bool
}

func (s *stopAfter) Begin(string, int64) {}
func (s *stopAfter) End(string, error)   {}
func (s *stopAfter) Add(item string, n int64) {
	if item != s.item {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got += n
	if !s.done && s.got > s.n {
		s.done = true
		syscall.Kill(s.pid, syscall.SIGSTOP)
	}
}

// TestStalledDestinationDropsOut freezes one of two destinations (a real
// S3 server of the test's own, SIGSTOPped in the middle of the upload): it
// drops out of the run, Failed and named, while the other stores the
// snapshot and the run ends.
func TestStalledDestinationDropsOut(t *testing.T) {
	testenv.Require(t, "the S3 test server", "AEGIS_TEST_S3_ENDPOINT")
	dir := t.TempDir()
	env := testenv.ServerScript(t, "s3", "start", filepath.Join(dir, "s3"))
	pid, err := strconv.Atoi(strings.Fields(env["AEGIS_TEST_S3_PIDS"])[0]) // the plain HTTP gateway
	if err != nil {
		t.Fatalf("gateway pid: %v", err)
	}
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGCONT)
		testenv.ServerScript(t, "s3", "stop", filepath.Join(dir, "s3"))
	})

	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	data := make([]byte, 48<<20) // incompressible: more than every buffer holds
	rand.Read(data)
	os.WriteFile(filepath.Join(src, "data.bin"), data, 0o644)

	p := &v1.BackupPolicy{Metadata: v1.ObjectMeta{Name: "web"}, Spec: v1.BackupPolicySpec{
		Schedule:     "@daily",
		Sources:      []v1.Source{{Name: "site", Files: &v1.FilesSource{Paths: []string{src}}}},
		Destinations: []string{"disk", "s3"},
		Encryption:   &v1.Encryption{None: true},
		Compression:  &v1.Compression{Algorithm: v1.CompressionNone},
	}}
	dests := map[string]*v1.Destination{
		"disk": {Metadata: v1.ObjectMeta{Name: "disk"}, Spec: v1.DestinationSpec{Local: &v1.LocalDestination{Path: filepath.Join(dir, "disk")}}},
		"s3": {Metadata: v1.ObjectMeta{Name: "s3"}, Spec: v1.DestinationSpec{S3: &v1.S3Destination{
			Provider: "other", Endpoint: env["AEGIS_TEST_S3_ENDPOINT"], Bucket: env["AEGIS_TEST_S3_BUCKET"],
			CredentialsFile: env["AEGIS_TEST_S3_CREDENTIALS_FILE"], PartSizeMiB: 5, ParallelUploads: 1,
		}}},
	}
	const stall = 3 * time.Second
	r := &Runner{Host: "h", Now: time.Now, StallTimeout: stall}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a guard, not the assertion
	defer cancel()
	freeze := &stopAfter{item: observe.DestItem("s3"), n: 6 << 20, pid: pid}
	res := r.Backup(ctx, log, BackupRequest{Policy: p, Destinations: dests, Progress: freeze})
	if !freeze.done {
		t.Fatal("the S3 gateway was never frozen: the test did not test a stall")
	}
	if ctx.Err() != nil {
		t.Fatal("the run never ended with one destination frozen")
	}
	if res.Result != v1.ResultPartiallyFailed {
		t.Fatalf("result %s, want PartiallyFailed: %+v", res.Result, res)
	}
	byName := map[string]v1.DestinationResult{}
	for _, d := range res.Destinations {
		byName[d.Name] = d
	}
	if d := byName["disk"]; d.Result != v1.ResultSucceeded {
		t.Errorf("disk: %+v, want Succeeded", d)
	}
	if d := byName["s3"]; d.Result != v1.ResultFailed || !strings.Contains(d.Error, "destination s3 made no progress for 3s: dropped from this run") {
		t.Errorf("s3: %+v, want Failed, named as stalled", d)
	}
	snaps, err := os.ReadDir(filepath.Join(dir, "disk", "h", "web", "site"))
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots on disk: %v %v, want 1", snaps, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "disk", "h", "web", "site", snaps[0].Name(), v1.ManifestName)); err != nil {
		t.Errorf("the snapshot on disk is not committed: %v", err)
	}
}
