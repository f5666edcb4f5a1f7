package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/registry"
	"github.com/aegis-backup/aegis/reconcile/retention"
	"github.com/aegis-backup/aegis/test/testenv"
)

// store is the destination a retention test runs on, named "store" in the
// manifests, with raw access for the test's own checks.
type store struct {
	kind string
	yaml string
	dest drivers.Destination
	// root is the local destination's directory ("" for others).
	root string
}

// storeKinds are the destinations each retention test runs on: the local
// one always, and the S3 test server when it runs (hack/test-env.sh; under
// CI=true it must).
var storeKinds = []string{"local", "s3"}

// openStore sets up a destination of the kind for e.
func openStore(t *testing.T, e *env, kind string) store {
	t.Helper()
	if kind == "local" {
		dir := filepath.Join(e.root, "backups")
		spec := &v1.Destination{Metadata: v1.ObjectMeta{Name: "store"}, Spec: v1.DestinationSpec{Local: &v1.LocalDestination{Path: dir}}}
		return store{kind: "local", yaml: destination("store", dir), dest: openRaw(t, spec), root: dir}
	}
	{
		env := testenv.Require(t, "S3 test server", "AEGIS_TEST_S3_ENDPOINT", "AEGIS_TEST_S3_BUCKET", "AEGIS_TEST_S3_CREDENTIALS_FILE")
		var b [4]byte
		rand.Read(b[:])
		prefix := "retention-" + hex.EncodeToString(b[:])
		spec := &v1.Destination{Metadata: v1.ObjectMeta{Name: "store"}, Spec: v1.DestinationSpec{S3: &v1.S3Destination{
			Provider: "minio", Endpoint: env["AEGIS_TEST_S3_ENDPOINT"], Bucket: env["AEGIS_TEST_S3_BUCKET"],
			Prefix: prefix, CredentialsFile: env["AEGIS_TEST_S3_CREDENTIALS_FILE"],
		}}}
		yaml := fmt.Sprintf("apiVersion: aegis.io/v1\nkind: Destination\nmetadata:\n  name: store\nspec:\n  s3:\n    provider: minio\n    endpoint: %s\n    bucket: %s\n    prefix: %s\n    credentialsFile: %s\n",
			spec.Spec.S3.Endpoint, spec.Spec.S3.Bucket, prefix, spec.Spec.S3.CredentialsFile)
		d := openRaw(t, spec)
		t.Cleanup(func() {
			objs, _ := d.List(context.Background(), "")
			for _, o := range objs {
				d.Delete(context.Background(), o.Key)
			}
		})
		return store{kind: "s3", yaml: yaml, dest: d}
	}
}

func openRaw(t *testing.T, spec *v1.Destination) drivers.Destination {
	t.Helper()
	d, err := registry.Destination(spec, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// keys lists every key on the destination, sorted.
func (s store) keys(t *testing.T) []string {
	t.Helper()
	objs, err := s.dest.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		out = append(out, o.Key)
	}
	sort.Strings(out)
	return out
}

// sums maps every key on the destination (or only those under the given
// directories) to the SHA-256 of its content.
func (s store) sums(t *testing.T, under ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range s.keys(t) {
		if len(under) > 0 && !slices.ContainsFunc(under, func(d string) bool { return strings.HasPrefix(k, d+"/") }) {
			continue
		}
		rc, err := s.dest.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		io.Copy(h, rc)
		rc.Close()
		out[k] = hex.EncodeToString(h.Sum(nil))
	}
	return out
}

// dirs maps each snapshot directory HOST/POLICY/SOURCE/ID to its files.
func dirsOf(keys []string) map[string][]string {
	out := map[string][]string{}
	for _, k := range keys {
		out[path.Dir(k)] = append(out[path.Dir(k)], path.Base(k))
	}
	return out
}

// copySnapshot stores a copy of the snapshot under dir (HOST/POLICY/SOURCE/
// ID) as another host, policy or ID would have written it, data first.
func (s store) copySnapshot(t *testing.T, from string, host, id string, at time.Time) string {
	t.Helper()
	ctx := context.Background()
	rc, err := s.dest.Get(ctx, from+"/"+v1.ManifestName)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.SnapshotManifest
	json.NewDecoder(rc).Decode(&m)
	rc.Close()
	objs, err := s.dest.List(ctx, from+"/")
	if err != nil {
		t.Fatal(err)
	}
	m.Host, m.ID, m.Time = host, id, at.UTC()
	to := v1.SnapshotDir(m.Host, m.Policy, m.Source, m.ID)
	body, _ := json.MarshalIndent(&m, "", "  ")
	if s.root != "" {
		// Plain copies: much faster than the driver's synced writes, for
		// tests that need thousands of snapshots.
		dir := filepath.Join(s.root, filepath.FromSlash(to))
		os.MkdirAll(dir, 0o700)
		for _, o := range objs {
			if path.Base(o.Key) != v1.ManifestName {
				b, err := os.ReadFile(filepath.Join(s.root, filepath.FromSlash(o.Key)))
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(filepath.Join(dir, path.Base(o.Key)), b, 0o600)
			}
		}
		os.WriteFile(filepath.Join(dir, v1.ManifestName), body, 0o600)
		return to
	}
	for _, o := range objs {
		if path.Base(o.Key) == v1.ManifestName {
			continue
		}
		rc, err := s.dest.Get(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.dest.Put(ctx, to+"/"+path.Base(o.Key), rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.dest.Put(ctx, to+"/"+v1.ManifestName, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	return to
}

// commandAt is an aegis-agent command with its clock set to at.
func (e *env) commandAt(at time.Time, args ...string) *exec.Cmd {
	cmd := e.command(args...)
	cmd.Env = append(cmd.Env, "AEGIS_TEST_NOW="+at.UTC().Format(time.RFC3339Nano))
	return cmd
}

// runAt runs aegis-agent with its clock set to at.
func (e *env) runAt(at time.Time, args ...string) result {
	e.t.Helper()
	cmd := e.commandAt(at, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			e.t.Fatalf("run aegis-agent %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return result{args: args, code: code, stdout: out.String(), stderr: errb.String()}
}

func (e *env) pruneJSON(at time.Time, args ...string) ([]retention.PruneReport, result) {
	e.t.Helper()
	r := e.runAt(at, append([]string{"prune", "--json"}, args...)...)
	var reps []retention.PruneReport
	if err := json.Unmarshal([]byte(r.stdout), &reps); err != nil {
		e.t.Fatalf("prune --json: %v\nstdout:\n%s\nstderr:\n%s", err, r.stdout, r.stderr)
	}
	return reps, r
}

// retentionLog reads the retention log's entries.
func (e *env) retentionLog() []retention.RetentionEntry {
	e.t.Helper()
	f, err := os.Open(filepath.Join(e.logs, "retention.log"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	var out []retention.RetentionEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var en retention.RetentionEntry
		if err := json.Unmarshal(sc.Bytes(), &en); err != nil {
			e.t.Fatalf("retention.log line %q: %v", sc.Text(), err)
		}
		out = append(out, en)
	}
	return out
}

func hostname(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// webPolicyWith is the policy of the retention tests: two sources, in
// Berlin, with the given retention block (or none).
func webPolicyWith(retention string) string {
	p := `apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: web
spec:
  schedule: "0 3 * * *"
  timeZone: Europe/Berlin
  sources:
    - name: site
      files:
        paths: ["@ROOT@/src/site"]
    - name: etc
      files:
        paths: ["@ROOT@/src/etc"]
  destinations: [store]
  encryption:
    age:
      recipients: ["@RECIPIENT@"]
`
	if retention != "" {
		p += "  retention: " + retention + "\n"
	}
	return p
}

func otherPolicy(name string) string {
	return strings.ReplaceAll(strings.ReplaceAll(smallPolicy(name, "store"), "@ROOT@/src", "@ROOT@/src/site"), `"@daily"`, `"0 4 * * *"`)
}

func berlin(t *testing.T, s string) time.Time {
	loc := mustZone(t, "Europe/Berlin")
	at, err := time.ParseInLocation("2006-01-02 15:04 MST", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	// ParseInLocation takes the abbreviation's offset when the zone knows it.
	return at
}

// TestRetentionOnSimulatedTimeline makes snapshots over a simulated month
// (through `aegis-agent run` with AEGIS_TEST_NOW, the code production
// uses), crossing the night clocks go back in Berlin, then applies a
// retention policy with prune --dry-run --json and prune, and checks
// exactly what remains on the destination. It runs on the local
// destination and on S3.
func TestRetentionOnSimulatedTimeline(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t)
			testRetentionTimeline(t, e, openStore(t, e, kind))
		})
	}
}

func testRetentionTimeline(t *testing.T, e *env, s store) {
	for _, d := range []string{"site", "etc"} {
		os.MkdirAll(filepath.Join(e.root, "src", d), 0o755)
		os.WriteFile(filepath.Join(e.root, "src", d, "f.txt"), []byte(d+"\n"), 0o644)
	}
	me := hostname(t)
	manifests := func(retention string, withGone bool) string {
		m := s.yaml + "---\n" + webPolicyWith(retention) + "---\n" + otherPolicy("other")
		if withGone {
			m += "---\n" + otherPolicy("gone")
		}
		return m
	}
	e.write("p.yaml", manifests("", true))

	// The timeline, in Berlin time. 25 October 2026: at 03:00 CEST clocks
	// go back to 02:00 CET. 2026-10-19 to 25 is ISO week 43.
	type snap struct {
		n    int
		at   string
		only string // the one source backed up, when not both
	}
	timeline := []snap{
		{0, "2026-09-15 03:00 CEST", ""},
		{1, "2026-10-01 03:00 CEST", ""},
		{2, "2026-10-05 03:00 CEST", ""},
		{3, "2026-10-12 03:00 CEST", ""},
		{4, "2026-10-18 03:00 CEST", ""},
		{5, "2026-10-22 03:00 CEST", ""},
		{6, "2026-10-23 03:00 CEST", ""},
		{7, "2026-10-24 03:00 CEST", ""},
		{8, "2026-10-25 02:30 CEST", ""},
		{9, "2026-10-25 02:30 CET", ""},
		{10, "2026-10-25 03:00 CET", "site"},
		{11, "2026-10-25 23:30 CET", ""},
		{12, "2026-10-26 00:30 CET", ""}, // still 25 October in UTC
		{13, "2026-10-26 03:00 CET", ""},
	}
	ids := map[int]string{}
	for _, sn := range timeline {
		at := berlin(t, sn.at)
		args := []string{"run", "web"}
		if sn.only != "" {
			args = append(args, "--source", sn.only)
		}
		r := e.runAt(at, args...)
		r.mustCode(t, 0)
		ids[sn.n] = at.UTC().Format("20060102T150405Z")
		if sn.n == 2 || sn.n == 9 {
			e.runAt(at.Add(time.Minute), "run", "other").mustCode(t, 0)
			e.runAt(at.Add(2*time.Minute), "run", "gone").mustCode(t, 0)
		}
	}
	// Snapshot IDs start with the simulated time.
	byPrefix := func(source string) map[int]string {
		out := map[int]string{}
		for dir := range dirsOf(s.keys(t)) {
			parts := strings.Split(dir, "/")
			if len(parts) != 4 || parts[0] != me || parts[1] != "web" || parts[2] != source {
				continue
			}
			for n, p := range ids {
				if strings.HasPrefix(parts[3], p) {
					out[n] = parts[3]
				}
			}
		}
		return out
	}
	site, etc := byPrefix("site"), byPrefix("etc")
	if len(site) != 14 || len(etc) != 13 {
		t.Fatalf("%d site and %d etc snapshots made, want 14 and 13: %v", len(site), len(etc), s.keys(t))
	}
	// Another host's snapshot under the same policy name and prefix.
	s.copySnapshot(t, v1.SnapshotDir(me, "web", "site", site[1]), "otherhost", v1.NewSnapshotID(berlin(t, "2026-10-01 04:00 CEST")), berlin(t, "2026-10-01 04:00 CEST"))
	// A leftover: data of an upload that never finished, long ago.
	leftover := v1.SnapshotDir(me, "web", "site", "20260901T010000Z-0badc0")
	if _, err := s.dest.Put(context.Background(), leftover+"/files.tar.zst.age", strings.NewReader("partial")); err != nil {
		t.Fatal(err)
	}
	// The policy "gone" is removed; its snapshots stay.
	e.write("p.yaml", manifests("{keepLast: 2, hourly: 6, daily: 3, weekly: 3, monthly: 2}", false))
	before := s.sums(t)

	// Worked out by hand (docs/retention.md states the rules), newest first:
	// 13 keepLast hourly daily weekly monthly; 12 keepLast hourly; 11 hourly
	// daily weekly (the newest of 25 October and of week 43); 10, 9 and 8
	// hourly (02:30 CET and 02:30 CEST are two hours); 7 daily; 4 weekly
	// (the newest of week 42); 0 monthly (September). etc has no 10, so its
	// sixth hour is 7's. 1, 2, 3, 5 and 6 go.
	wantSite := map[int]string{13: "keepLast,hourly,daily,weekly,monthly", 12: "keepLast,hourly", 11: "hourly,daily,weekly",
		10: "hourly", 9: "hourly", 8: "hourly", 7: "daily", 4: "weekly", 0: "monthly"}
	wantEtc := map[int]string{13: "keepLast,hourly,daily,weekly,monthly", 12: "keepLast,hourly", 11: "hourly,daily,weekly",
		9: "hourly", 8: "hourly", 7: "hourly,daily", 4: "weekly", 0: "monthly"}
	gone := []int{1, 2, 3, 5, 6}
	now := berlin(t, "2026-10-26 12:00 CET")

	checkVerdicts := func(dp *retention.DestinationPrune) {
		t.Helper()
		keep := map[string]string{}
		for _, k := range dp.Keep {
			keep[k.Source+"/"+k.ID] = strings.Join(k.Rules, ",")
		}
		del := map[string]bool{}
		for _, d := range dp.Delete {
			del[d.Source+"/"+d.ID] = true
		}
		for src, want := range map[string]map[int]string{"site": wantSite, "etc": wantEtc} {
			idsOf := site
			if src == "etc" {
				idsOf = etc
			}
			for n, rules := range want {
				if got := keep[src+"/"+idsOf[n]]; got != rules {
					t.Errorf("%s #%d (%s): kept for %q, want %q", src, n, idsOf[n], got, rules)
				}
			}
			for _, n := range gone {
				if !del[src+"/"+idsOf[n]] {
					t.Errorf("%s #%d (%s) is not deleted", src, n, idsOf[n])
				}
			}
		}
		if len(dp.Keep) != len(wantSite)+len(wantEtc) || len(dp.Delete) != 2*len(gone) {
			t.Errorf("%d kept and %d deleted, want %d and %d", len(dp.Keep), len(dp.Delete), len(wantSite)+len(wantEtc), 2*len(gone))
		}
		if len(dp.Leftovers) != 1 || dp.Leftovers[0].Dir != leftover || dp.Leftovers[0].Remove {
			t.Errorf("leftovers: %+v", dp.Leftovers)
		}
	}

	// The dry run says what would happen, and changes nothing.
	reps, r := e.pruneJSON(now, "--dry-run")
	r.mustCode(t, 0)
	if len(reps) != 2 || reps[1].Policy != "web" || !reps[1].DryRun || reps[1].Rules != "keepLast 2, hourly 6, daily 3, weekly 3, monthly 2" || reps[1].TimeZone != "Europe/Berlin" {
		t.Fatalf("reports: %+v", reps)
	}
	checkVerdicts(reps[1].Destinations[0])
	if got := s.sums(t); !mapsEqual(got, before) {
		t.Fatal("prune --dry-run changed the destination")
	}
	if len(e.retentionLog()) != 0 {
		t.Error("prune --dry-run wrote retention.log")
	}

	// The real thing.
	reps, r = e.pruneJSON(now, "web")
	r.mustCode(t, 0)
	dp := reps[0].Destinations[0]
	checkVerdicts(dp)
	if dp.Result != v1.ResultSucceeded || dp.Deleted != 10 {
		t.Errorf("destination: %s, %d deleted: %s", dp.Result, dp.Deleted, dp.Message)
	}
	// Exactly the kept snapshots, untouched, and everything not web's or
	// not this host's, remain.
	var want []string
	for k := range before {
		parts := strings.Split(k, "/")
		drop := false
		if len(parts) == 5 && parts[0] == me && parts[1] == "web" {
			for _, n := range gone {
				if parts[3] == site[n] || parts[3] == etc[n] {
					drop = true
				}
			}
		}
		if !drop {
			want = append(want, k)
		}
	}
	sort.Strings(want)
	after := s.sums(t)
	if got := s.keys(t); !slices.Equal(got, want) {
		t.Errorf("left on the destination:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for k, sum := range after {
		if before[k] != sum {
			t.Errorf("%s changed", k)
		}
	}
	// Every deletion is in retention.log.
	var logged []string
	for _, en := range e.retentionLog() {
		if en.Action != "deleteSnapshot" || en.Destination != "store" || en.Policy != "web" || en.Host != me || !strings.Contains(en.Reason, "kept by no rule") {
			t.Errorf("retention.log entry: %+v", en)
		}
		logged = append(logged, en.Source+"/"+en.Snapshot)
	}
	var deleted []string
	for _, n := range gone {
		deleted = append(deleted, "site/"+site[n], "etc/"+etc[n])
	}
	slices.Sort(logged)
	slices.Sort(deleted)
	if !slices.Equal(logged, deleted) {
		t.Errorf("retention.log names %v, want %v", logged, deleted)
	}
	// The status counts them.
	st := entry(t, e.status("p.yaml"), v1.KindBackupPolicy, "web")
	if lr := st.LastRetention; lr == nil || lr.Result != v1.ResultSucceeded || lr.Deleted != 10 || lr.Kept != 17 || len(lr.Destinations) != 1 || lr.Destinations[0].Name != "store" {
		t.Errorf("status lastRetention: %+v", st.LastRetention)
	}
	// The kept snapshots read back whole: the oldest, a DST one, the newest.
	for _, n := range []int{0, 8, 13} {
		v := e.run("verify", "web", "--snapshot", site[n], "--identity", e.identity)
		v.mustCode(t, 0)
	}
	mine := 0
	for _, sn := range e.snapshots("web") {
		if sn.Manifest.Host == me {
			mine++
		}
	}
	if mine != 17 {
		t.Errorf("snapshots web lists %d of this host's, want 17", mine)
	}

	// Two days after the data was written, the leftover goes; nothing else.
	reps, r = e.pruneJSON(time.Now().Add(48*time.Hour), "web")
	r.mustCode(t, 0)
	if dp := reps[0].Destinations[0]; dp.Deleted != 0 || dp.LeftoversRemoved != 1 || !dp.Leftovers[0].Removed {
		t.Errorf("later pass: %+v", dp)
	}
	want = slices.DeleteFunc(want, func(k string) bool { return strings.HasPrefix(k, leftover+"/") })
	if got := s.keys(t); !slices.Equal(got, want) {
		t.Errorf("after the later pass:\n%s", strings.Join(got, "\n"))
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// snapshotDirs lists this host's snapshot directories of a policy.
func (s store) snapshotDirs(t *testing.T, host, policy string) []string {
	t.Helper()
	var out []string
	for dir, names := range dirsOf(s.keys(t)) {
		if strings.HasPrefix(dir, host+"/"+policy+"/") && slices.Contains(names, v1.ManifestName) {
			out = append(out, dir)
		}
	}
	sort.Strings(out)
	return out
}

func nightlyPolicy(retention string) string {
	return `apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: nightly
spec:
  schedule: "0 0 * * *"
  sources:
    - name: files
      files:
        paths: ["@ROOT@/src"]
  destinations: [store]
  encryption:
    age:
      recipients: ["@RECIPIENT@"]
  retention: ` + retention + "\n"
}

// TestRetentionAfterEachBackupAndOnSchedule runs the agent (--once) over a
// simulated week: retention follows each backup, then, with tighter rules,
// runs on its own schedule (01:00) when no backup is due.
func TestRetentionAfterEachBackupAndOnSchedule(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t)
			s := openStore(t, e, kind)
			smallTree(t, e)
			me := hostname(t)
			e.write("n.yaml", s.yaml+"---\n"+nightlyPolicy("{daily: 3}"))
			stamp := func(d, h, m int) time.Time { return time.Date(2026, time.October, d, h, m, 0, 0, time.UTC) }
			for d := 1; d <= 6; d++ {
				r := e.runAt(stamp(d, 0, 30), "--once")
				r.mustCode(t, 0)
				if got := len(s.snapshotDirs(t, me, "nightly")); got != min(d, 3) {
					t.Fatalf("day %d: %d snapshots, want %d\n%s", d, got, min(d, 3), r.stderr)
				}
			}
			var got []string
			for _, dir := range s.snapshotDirs(t, me, "nightly") {
				got = append(got, path.Base(dir)[:16])
			}
			if want := []string{"20261004T003000Z", "20261005T003000Z", "20261006T003000Z"}; !slices.Equal(got, want) {
				t.Errorf("after a week: %v, want %v", got, want)
			}
			st := entry(t, e.status("n.yaml"), v1.KindBackupPolicy, "nightly")
			if lr := st.LastRetention; lr == nil || lr.Result != v1.ResultSucceeded || lr.Deleted != 1 || lr.Kept != 3 {
				t.Errorf("lastRetention after the backup of day 6: %+v", lr)
			}
			lastSnap := st.LastRun.SnapshotID

			// Tighter rules; at 01:30 no backup is due, but the 01:00
			// retention slot passed since the last retention.
			e.write("n.yaml", s.yaml+"---\n"+nightlyPolicy("{keepLast: 1}"))
			r := e.runAt(stamp(6, 1, 30), "--once")
			r.mustCode(t, 0)
			dirs := s.snapshotDirs(t, me, "nightly")
			if len(dirs) != 1 || !strings.HasPrefix(path.Base(dirs[0]), "20261006T003000Z") {
				t.Errorf("after the scheduled retention: %v", dirs)
			}
			st = entry(t, e.status("n.yaml"), v1.KindBackupPolicy, "nightly")
			if st.LastRun.SnapshotID != lastSnap {
				t.Errorf("a backup ran at 01:30: %s", st.LastRun.SnapshotID)
			}
			if lr := st.LastRetention; lr == nil || lr.Deleted != 2 || !lr.Time.After(stamp(6, 1, 29)) {
				t.Errorf("lastRetention after the scheduled pass: %+v", lr)
			}
			if n := len(e.retentionLog()); n != 5 {
				t.Errorf("retention.log has %d entries, want 5", n)
			}
			// Nothing more is due in that slot.
			e.runAt(stamp(6, 2, 0), "--once").mustCode(t, 0)
			if lr := entry(t, e.status("n.yaml"), v1.KindBackupPolicy, "nightly").LastRetention; lr.Time.After(stamp(6, 1, 59)) {
				t.Errorf("retention ran again in the same slot: %+v", lr)
			}
		})
	}
}

// TestPruneSkipsDestinationWhoseLastBackupFailed: a destination the last
// backup failed on is left alone until the user says --force.
func TestPruneSkipsDestinationWhoseLastBackupFailed(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	me := hostname(t)
	good, bad := filepath.Join(e.root, "good"), filepath.Join(e.root, "bad")
	manifests := func(retention string) string {
		p := strings.Replace(smallPolicy("p", "a, b"), "@daily", "0 3 * * *", 1)
		if retention != "" {
			p += "  retention: " + retention + "\n"
		}
		return destination("a", good) + "---\n" + destination("b", bad) + "---\n" + p
	}
	e.write("p.yaml", manifests(""))
	start := time.Date(2026, time.October, 1, 3, 0, 0, 0, time.UTC)
	for d := range 3 {
		e.runAt(start.AddDate(0, 0, d), "run", "p").mustCode(t, 0)
	}
	// b breaks for one backup: its path is a file.
	os.Rename(bad, bad+".saved")
	os.WriteFile(bad, []byte("x"), 0o644)
	e.runAt(start.AddDate(0, 0, 3), "run", "p").mustCode(t, 1)
	os.Remove(bad)
	os.Rename(bad+".saved", bad)
	count := func(root string) int {
		return len(s3less(t, root, me))
	}
	if count(good) != 4 || count(bad) != 3 {
		t.Fatalf("%d snapshots on a, %d on b; want 4 and 3", count(good), count(bad))
	}

	e.write("p.yaml", manifests("{keepLast: 1}"))
	at := start.AddDate(0, 0, 4)
	r := e.runAt(at, "prune", "p")
	r.mustCode(t, 1)
	if !strings.Contains(r.stdout, "the last backup to this destination failed") || !strings.Contains(r.stdout, "--force") {
		t.Errorf("prune output:\n%s", r.stdout)
	}
	if count(good) != 1 || count(bad) != 3 {
		t.Errorf("after prune: %d on a, %d on b; want 1 and 3", count(good), count(bad))
	}
	// A dry run shows what --force would do, and is not an error.
	reps, r := e.pruneJSON(at, "p", "--dry-run", "--force")
	r.mustCode(t, 0)
	if dp := reps[0].Destinations[1]; dp.Destination != "b" || len(dp.Delete) != 2 || !strings.HasPrefix(dp.Message, "forced") {
		t.Errorf("dry run with --force on b: %+v", dp)
	}
	e.runAt(at, "prune", "p", "--force").mustCode(t, 0)
	if count(bad) != 1 {
		t.Errorf("after prune --force: %d on b, want 1", count(bad))
	}
	forced := 0
	for _, en := range e.retentionLog() {
		if en.Forced && en.Destination == "b" && strings.Contains(en.Reason, "forced although the last backup to this destination failed") {
			forced++
		}
	}
	if forced != 2 {
		t.Errorf("%d forced deletions logged, want 2", forced)
	}
	st := entry(t, e.status("p.yaml"), v1.KindBackupPolicy, "p")
	if lr := st.LastRetention; lr == nil || lr.Result != v1.ResultSucceeded || lr.Deleted != 2 {
		t.Errorf("lastRetention: %+v", lr)
	}
}

// s3less lists the snapshot directories of host under a local destination.
func s3less(t *testing.T, root, host string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(root, host), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == v1.ManifestName {
			out = append(out, filepath.Dir(p))
		}
		return nil
	})
	return out
}

// TestPruneNothingWhenAManifestIsUnreadable: a manifest that cannot be read
// makes the listing incomplete: nothing is deleted until it is fixed.
func TestPruneNothingWhenAManifestIsUnreadable(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t)
			s := openStore(t, e, kind)
			smallTree(t, e)
			me := hostname(t)
			pol := strings.Replace(smallPolicy("p", "store"), "@daily", "0 3 * * *", 1)
			e.write("p.yaml", s.yaml+"---\n"+pol)
			start := time.Date(2026, time.October, 1, 3, 0, 0, 0, time.UTC)
			for d := range 4 {
				e.runAt(start.AddDate(0, 0, d), "run", "p").mustCode(t, 0)
			}
			dirs := s.snapshotDirs(t, me, "p")
			key := dirs[1] + "/" + v1.ManifestName
			rc, err := s.dest.Get(context.Background(), key)
			if err != nil {
				t.Fatal(err)
			}
			orig, _ := io.ReadAll(rc)
			rc.Close()
			s.dest.Put(context.Background(), key, strings.NewReader("{not json"))
			e.write("p.yaml", s.yaml+"---\n"+pol+"  retention: {keepLast: 1}\n")
			before := s.keys(t)

			r := e.runAt(start.AddDate(0, 0, 5), "prune", "p")
			r.mustCode(t, 1)
			if !strings.Contains(r.stdout, "nothing deleted") || !strings.Contains(r.stdout, "is not valid") {
				t.Errorf("prune output:\n%s", r.stdout)
			}
			if after := s.keys(t); !slices.Equal(before, after) {
				t.Error("deleted with an unreadable manifest")
			}
			// The dry run cannot decide either: exit 1.
			e.runAt(start.AddDate(0, 0, 5), "prune", "p", "--dry-run").mustCode(t, 1)
			st := entry(t, e.status("p.yaml"), v1.KindBackupPolicy, "p")
			if lr := st.LastRetention; lr == nil || lr.Result != v1.ResultFailed || !strings.Contains(lr.Destinations[0].Message, "is not valid") {
				t.Errorf("lastRetention: %+v", lr)
			}
			// Repaired, the next pass finishes the job.
			s.dest.Put(context.Background(), key, bytes.NewReader(orig))
			e.runAt(start.AddDate(0, 0, 5), "prune", "p").mustCode(t, 0)
			if got := s.snapshotDirs(t, me, "p"); len(got) != 1 || got[0] != dirs[3] {
				t.Errorf("after the repair: %v", got)
			}
		})
	}
}

// TestPruneKilledMidwayFinishesNextPass SIGKILLs a prune while it deletes:
// the kept snapshots are untouched, the snapshots it was deleting have
// vanished from the listings, and the next pass finishes the job.
func TestPruneKilledMidwayFinishesNextPass(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t)
			s := openStore(t, e, kind)
			smallTree(t, e)
			me := hostname(t)
			pol := strings.Replace(smallPolicy("p", "store"), "@daily", "0 3 * * *", 1)
			e.write("p.yaml", s.yaml+"---\n"+pol)
			t0 := time.Date(2026, time.October, 31, 0, 0, 0, 0, time.UTC)
			e.runAt(t0, "run", "p").mustCode(t, 0)
			orig := s.snapshotDirs(t, me, "p")[0]
			n := 1000
			if kind != "local" {
				n = 300
			}
			for i := 1; i <= n; i++ {
				at := t0.Add(-time.Duration(i) * time.Hour)
				s.copySnapshot(t, orig, me, v1.NewSnapshotID(at), at)
			}
			all := s.snapshotDirs(t, me, "p")
			kept := all[len(all)-3:]
			e.write("p.yaml", s.yaml+"---\n"+pol+"  retention: {keepLast: 3}\n")
			before := s.sums(t, kept...)

			cmd := e.commandAt(t0.Add(time.Hour), "prune", "p")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			logPath := filepath.Join(e.logs, "retention.log")
			killed := false
			deadline := time.After(120 * time.Second)
		wait:
			for {
				select {
				case <-done:
					break wait
				case <-deadline:
					cmd.Process.Kill()
					t.Fatalf("prune did not get going:\n%s", out.String())
				case <-time.After(2 * time.Millisecond):
					if b, _ := os.ReadFile(logPath); bytes.Count(b, []byte("\n")) >= n/10 {
						cmd.Process.Signal(syscall.SIGKILL)
						<-done
						killed = true
						break wait
					}
				}
			}
			if !killed {
				t.Fatalf("prune finished before it could be killed; raise the count\n%s", out.String())
			}

			// The kept snapshots are whole.
			keys := s.keys(t)
			if now := s.sums(t, kept...); !mapsEqual(now, before) {
				t.Errorf("kept snapshots damaged by the kill: %v, was %v", now, before)
			}
			half := 0
			for dir, names := range dirsOf(keys) {
				if strings.HasPrefix(dir, me+"/p/") && !slices.Contains(names, v1.ManifestName) {
					half++
				}
			}
			remaining := len(s.snapshotDirs(t, me, "p"))
			t.Logf("killed after %d of %d deletions logged; %d snapshots left, %d deletions caught between manifest and data",
				len(e.retentionLog()), n-2, remaining, half)
			if remaining <= 3 {
				t.Fatalf("the kill came too late to test anything")
			}

			// The next pass finishes the job: exactly the kept snapshots.
			e.runAt(t0.Add(time.Hour), "prune", "p").mustCode(t, 0)
			var want []string
			for k := range before {
				want = append(want, k)
			}
			sort.Strings(want)
			if got := s.keys(t); !slices.Equal(got, want) {
				t.Errorf("after the next pass, %d keys remain, want %d", len(got), len(want))
			}
			// Every deleted snapshot is in retention.log (as a deletion, or,
			// when the kill came before its line, as a finished leftover).
			logged := map[string]bool{}
			for _, en := range e.retentionLog() {
				logged[en.Snapshot] = true
			}
			for _, dir := range all[:len(all)-3] {
				if !logged[path.Base(dir)] {
					t.Errorf("deletion of %s is not in retention.log", dir)
					break
				}
			}
		})
	}
}

// TestScheduledRetentionAfterAFailedBackup: when a backup and a retention
// slot are due in the same pass and the backup fails on one destination,
// retention still runs on the others, and deletes nothing on that one
// (here its listing fails too; TestPruneSkipsDestinationWhoseLastBackupFailed
// covers a destination that lists but whose last backup failed).
func TestScheduledRetentionAfterAFailedBackup(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	me := hostname(t)
	good, bad := filepath.Join(e.root, "good"), filepath.Join(e.root, "bad")
	pol := strings.Replace(smallPolicy("p", "a, b"), "@daily", "0 0 * * *", 1) + "  retention: {keepLast: 2}\n"
	e.write("p.yaml", destination("a", good)+"---\n"+destination("b", bad)+"---\n"+pol)
	stamp := func(d, h int) time.Time { return time.Date(2026, time.October, d, h, 30, 0, 0, time.UTC) }
	for d := 1; d <= 3; d++ {
		e.runAt(stamp(d, 0), "--once").mustCode(t, 0)
	}
	// Three more snapshots that retention has not seen yet.
	e.write("p.yaml", destination("a", good)+"---\n"+destination("b", bad)+"---\n"+strings.TrimSuffix(pol, "  retention: {keepLast: 2}\n"))
	for h := 2; h <= 4; h++ {
		e.runAt(stamp(3, h), "run", "p").mustCode(t, 0)
	}
	e.write("p.yaml", destination("a", good)+"---\n"+destination("b", bad)+"---\n"+pol)
	if len(s3less(t, good, me)) != 5 || len(s3less(t, bad, me)) != 5 {
		t.Fatalf("%d and %d snapshots", len(s3less(t, good, me)), len(s3less(t, bad, me)))
	}
	// Day 4, 01:30: the 00:00 backup and the 01:00 retention are both due.
	// b fails the backup.
	os.Rename(bad, bad+".saved")
	os.WriteFile(bad, []byte("x"), 0o644)
	r := e.runAt(stamp(4, 1), "--once")
	os.Remove(bad)
	os.Rename(bad+".saved", bad)
	r.mustCode(t, 1)
	if n := len(s3less(t, good, me)); n != 2 {
		t.Errorf("%d snapshots on a, want 2", n)
	}
	if n := len(s3less(t, bad, me)); n != 5 {
		t.Errorf("%d snapshots on b, want 5 (its last backup failed)", n)
	}
	st := entry(t, e.status("p.yaml"), v1.KindBackupPolicy, "p")
	lr := st.LastRetention
	if lr == nil || lr.Result != v1.ResultPartiallyFailed || len(lr.Destinations) != 2 || lr.Destinations[1].Result != v1.ResultFailed ||
		!strings.Contains(lr.Destinations[1].Message, "nothing deleted") || lr.Deleted != 4 {
		t.Errorf("lastRetention: %+v", lr)
	}
}
