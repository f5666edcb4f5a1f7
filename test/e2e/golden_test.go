package e2e

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with what the commands print")

// golden compares got with testdata/NAME.golden, or writes it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s (-update rewrites it):\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

// normalizer replaces what differs between runs (the temporary root, the
// host name, snapshot IDs, hashes, sub-second times) with fixed names.
type normalizer struct {
	root, host string
	ids        map[string]string
	// sizes maps the sizes of the snapshot (its data, and all it stores,
	// manifest included) to names: the tar's headers grow with the
	// temporary root's path, the manifest with the run's duration.
	sizes map[string]string
}

var (
	snapshotIDRe = regexp.MustCompile(`\d{8}T\d{6}Z-[0-9a-f]{6}`)
	sha256Re     = regexp.MustCompile(`\b[0-9a-f]{64}\b`)
	fractionRe   = regexp.MustCompile(`(\d\d:\d\d:\d\d)\.\d+`)
	// The log's own time stamps are the host's, not the agent's clock.
	logTimeRe  = regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d `)
	durationRe = regexp.MustCompile(`"duration": "[^"]*"`)
)

func (n *normalizer) normalize(s string) string {
	s = strings.ReplaceAll(s, n.root, "@ROOT@")
	s = snapshotIDRe.ReplaceAllStringFunc(s, func(id string) string {
		if n.ids[id] == "" {
			n.ids[id] = fmt.Sprintf("@SNAPSHOT%d@", len(n.ids)+1)
		}
		return n.ids[id]
	})
	s = sha256Re.ReplaceAllString(s, "@SHA256@")
	s = fractionRe.ReplaceAllString(s, "$1")
	s = logTimeRe.ReplaceAllString(s, "@LOGTIME@ ")
	s = durationRe.ReplaceAllString(s, `"duration": "@DURATION@"`)
	for size, name := range n.sizes {
		s = regexp.MustCompile(`(": |  )`+regexp.QuoteMeta(size)+`\b`).ReplaceAllString(s, "${1}"+name)
	}
	if n.host != "" {
		s = strings.ReplaceAll(s, `"host": "`+n.host+`"`, `"host": "@HOST@"`)
	}
	return s
}

// transcript is what a user sees of one command: its output and its exit
// code.
func transcript(r result) string {
	return fmt.Sprintf("$ aegis-agent %s\n[exit %d]\n--- stdout\n%s--- stderr\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// TestGoldenOutputs holds what users read of validate, status, status
// --json, snapshots --json and prune --dry-run --json against golden files.
// The agent's clock (AEGIS_TEST_NOW) fixes every time; the commands run
// 30 s past the minute, so that ages printed in whole minutes do not
// depend on how long a backup takes.
func TestGoldenOutputs(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	host, _ := os.Hostname()
	n := &normalizer{root: e.root, host: host, ids: map[string]string{}}
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+goldenPolicy)
	at := func(d time.Duration) time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC).Add(d) }
	runAt := func(d time.Duration, args ...string) result {
		cmd := e.commandAt(at(d), args...)
		cmd.Env = append(cmd.Env, "TZ=UTC", "NO_COLOR=1")
		return runCmd(t, cmd, args)
	}

	valid := runAt(0, "validate")
	golden(t, "validate", n.normalize(transcript(valid)))
	bad := filepath.Join(e.root, "bad")
	os.MkdirAll(bad, 0o755)
	os.WriteFile(filepath.Join(bad, "bad.yaml"), []byte(goldenInvalid), 0o644)
	golden(t, "validate-invalid", n.normalize(transcript(runAt(0, "validate", bad))))

	golden(t, "status-pending", n.normalize(transcript(runAt(0, "status"))))
	runAt(0, "run", "p").mustCode(t, 0)
	runAt(time.Hour, "run", "p").mustCode(t, 0)

	n.sizes = snapshotSizes(t, filepath.Join(e.root, "backups"))
	status := runAt(90*time.Minute+30*time.Second, "status")
	golden(t, "status", n.normalize(transcript(status)))
	asJSON := runAt(90*time.Minute+30*time.Second, "status", "--json")
	asJSON.stdout = normalizeAges(t, asJSON.stdout, 30*60+30)
	golden(t, "status-json", n.normalize(transcript(asJSON)))

	golden(t, "snapshots-json", n.normalize(transcript(runAt(2*time.Hour, "snapshots", "--json"))))
	golden(t, "prune-dry-run-json", n.normalize(transcript(runAt(2*time.Hour, "prune", "--dry-run", "--json"))))
}

// snapshotSizes names the sizes of the only snapshot under dir: its data
// object (@DATA@) and all its files (@STORED@, and as status prints it).
func snapshotSizes(t *testing.T, dir string) map[string]string {
	t.Helper()
	manifests := manifestsUnder(t, dir)
	if len(manifests) != 1 {
		t.Fatalf("%d snapshots under %s, want 1", len(manifests), dir)
	}
	entries, err := os.ReadDir(filepath.Dir(manifests[0]))
	if err != nil {
		t.Fatal(err)
	}
	var data, total int64
	for _, de := range entries {
		fi, err := de.Info()
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
		if de.Name() != filepath.Base(manifests[0]) {
			data += fi.Size()
		}
	}
	return map[string]string{
		fmt.Sprint(data):  "@DATA@",
		fmt.Sprint(total): "@STORED@",
		fmt.Sprintf("%.1f KiB", float64(total)/1024): "@STORED_KIB@",
	}
}

// normalizeAges checks each policy's ageSeconds against want (give or take
// the second a run takes) and replaces it with want.
func normalizeAges(t *testing.T, out string, want int64) string {
	t.Helper()
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return regexp.MustCompile(`"ageSeconds": (\d+)`).ReplaceAllStringFunc(out, func(m string) string {
		var got int64
		fmt.Sscanf(m, `"ageSeconds": %d`, &got)
		if got < want-2 || got > want+1 {
			t.Errorf("ageSeconds %d, want about %d", got, want)
		}
		return fmt.Sprintf(`"ageSeconds": %d`, want)
	})
}

// runCmd runs cmd, a command of aegis-agent ARGS.
func runCmd(t *testing.T, cmd *exec.Cmd, args []string) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	code := 0
	if err := cmd.Run(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run aegis-agent %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return result{args: args, code: code, stdout: out.String(), stderr: errb.String()}
}

const goldenPolicy = `apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: p
spec:
  schedule: "@daily"
  timeZone: UTC
  sources:
    - name: files
      files:
        paths: ["@ROOT@/src"]
  destinations: [disk]
  compression: {algorithm: none}
  encryption: {none: true}
  retention: {keepLast: 1}
`

const goldenInvalid = `apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: Bad_Name
spec:
  schedule: "every day"
  sources: []
  destinations: [nowhere]
`
