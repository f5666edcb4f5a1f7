package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

func smallPolicy(name, dest string) string {
	return `apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: ` + name + `
spec:
  schedule: "@daily"
  sources:
    - name: files
      files:
        paths: ["@ROOT@/src"]
  destinations: [` + dest + `]
  encryption:
    age:
      recipients: ["@RECIPIENT@"]
`
}

func destination(name, path string) string {
	return `apiVersion: aegis.io/v1
kind: Destination
metadata:
  name: ` + name + `
spec:
  local:
    path: ` + path + `
`
}

func smallTree(t *testing.T, e *env) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(e.root, "src", "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.root, "src", "d", "f.txt"), []byte("data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func manifestsUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Name() == "manifest.json" {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestInvalidManifestBesideValidOne(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	e.write("good.yaml", destination("disk", "@ROOT@/backups")+"---\n"+smallPolicy("good", "disk"))
	bad := e.write("bad.yaml", `apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: bad
spec:
  schedule: "0 25 * * *"
  sources:
    - name: files
      files:
        paths: ["@ROOT@/src"]
        excludes: ["*.tmp"]
  destinations: [nowhere]
  encryption:
    none: true
`)
	problems := []string{
		bad + `:6: BackupPolicy/bad: spec.schedule: invalid schedule "0 25 * * *": end of range (25) above maximum (23): 25`,
		bad + `:11: BackupPolicy/bad: spec.sources[0].files.excludes: unknown field (did you mean "exclude"?)`,
		bad + `:12: BackupPolicy/bad: spec.destinations[0]: destination "nowhere" not found`,
	}
	r := e.run("--once", "--log-format", "json")
	r.mustCode(t, 2)
	for _, want := range problems {
		quoted, _ := json.Marshal(want)
		if !strings.Contains(r.stderr, string(quoted)) {
			t.Errorf("--once log lacks %s:\n%s", quoted, r.stderr)
		}
	}
	// The valid policy still ran.
	if n := len(manifestsUnder(t, filepath.Join(e.root, "backups"))); n != 1 {
		t.Errorf("snapshots of the valid policy: %d, want 1", n)
	}
	st := entry(t, e.status("bad.yaml"), v1.KindBackupPolicy, "bad")
	c := condition(t, st, v1.ConditionValid)
	if c.Status != v1.ConditionFalse || c.Reason != "InvalidManifest" || !strings.Contains(c.Message, `destination "nowhere" not found`) {
		t.Errorf("Valid condition of the bad policy = %+v", c)
	}

	// validate reports the same problems, and exit code 2.
	v := e.run("validate")
	v.mustCode(t, 2)
	if got, want := v.stdout, strings.Join(problems, "\n")+"\n"; got != want {
		t.Errorf("validate output:\n%s\nwant:\n%s", got, want)
	}
	e.run("validate", filepath.Join(e.config, "good.yaml")).mustCode(t, 0)
}

func TestUnwritableDestination(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	// A path below a regular file can never be created, not even by root.
	blocker := filepath.Join(e.root, "blocker")
	os.WriteFile(blocker, []byte("x"), 0o644)
	e.write("p.yaml", destination("broken", blocker+"/backups")+"---\n"+smallPolicy("p", "broken"))

	r := e.run("--once")
	r.mustCode(t, 1)
	st := entry(t, e.status("p.yaml"), v1.KindBackupPolicy, "p")
	c := condition(t, st, v1.ConditionReady)
	if c.Status != v1.ConditionFalse || c.Reason != "BackupFailed" || !strings.Contains(c.Message, "destination broken is not usable") || !strings.Contains(c.Message, "not a directory") {
		t.Errorf("Ready = %+v", c)
	}
	if st.LastRun == nil || st.LastRun.Result != v1.ResultFailed || st.LastSuccessfulTime != nil {
		t.Errorf("last run = %+v", st.LastRun)
	}
	dc := condition(t, entry(t, e.status("p.yaml"), v1.KindDestination, "broken"), v1.ConditionReachable)
	if dc.Status != v1.ConditionFalse {
		t.Errorf("destination Reachable = %+v", dc)
	}
	if n := len(manifestsUnder(t, e.root)); n != 0 {
		t.Errorf("%d snapshot manifests visible after a failed run", n)
	}
}

func TestReadOnlyDestinationDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes into read-only directories; TestUnwritableDestination covers root")
	}
	e := newEnv(t)
	smallTree(t, e)
	ro := filepath.Join(e.root, "ro")
	os.MkdirAll(ro, 0o555)
	e.write("p.yaml", destination("ro", ro)+"---\n"+smallPolicy("p", "ro"))
	r := e.run("--once")
	r.mustCode(t, 1)
	c := condition(t, entry(t, e.status("p.yaml"), v1.KindBackupPolicy, "p"), v1.ConditionReady)
	if !strings.Contains(c.Message, "permission denied") {
		t.Errorf("Ready = %+v", c)
	}
}

// TestFailingSourceIsReportedNotFatal: a database source whose server does
// not answer fails with the tool's words; the policy's other source is
// still backed up. (It used postgres as an unsupported driver, before the
// postgres driver came.)
func TestFailingSourceIsReportedNotFatal(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	secret := filepath.Join(e.root, "pgpass")
	os.WriteFile(secret, []byte("pw\n"), 0o600)
	e.write("db.yaml", destination("disk", "@ROOT@/backups")+`---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: db
spec:
  schedule: "@hourly"
  sources:
    - name: files
      files:
        paths: ["@ROOT@/src"]
    - name: pg
      postgres:
        host: 127.0.0.1
        port: 1
        user: postgres
        passwordFile: `+secret+`
  destinations: [disk]
  encryption:
    age:
      recipients: ["@RECIPIENT@"]
`)
	e.run("validate").mustCode(t, 0)
	r := e.run("--once")
	r.mustCode(t, 1)
	st := entry(t, e.status("db.yaml"), v1.KindBackupPolicy, "db")
	if c := v1.FindCondition(st.Conditions, v1.ConditionSupported); c != nil && c.Status == v1.ConditionFalse {
		t.Errorf("Supported = %+v", *c)
	}
	if st.LastRun == nil || st.LastRun.Result != v1.ResultPartiallyFailed {
		t.Fatalf("last run = %+v", st.LastRun)
	}
	c := condition(t, st, v1.ConditionReady)
	if c.Status != v1.ConditionFalse || !strings.Contains(c.Message, `source pg: back up source pg: psql failed (exit status 2): psql: error: connection to server at "127.0.0.1", port 1 failed: Connection refused`) {
		t.Errorf("Ready = %+v", c)
	}
	// The supported source was still backed up.
	if n := len(manifestsUnder(t, filepath.Join(e.root, "backups"))); n != 1 {
		t.Errorf("%d snapshots, want 1 (the files source)", n)
	}
}

func TestRunRefusedWhilePolicyLocked(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+smallPolicy("p", "disk"))
	// Hold the policy's lock as a running agent would.
	os.MkdirAll(filepath.Join(e.state, "locks"), 0o700)
	f, err := os.OpenFile(filepath.Join(e.state, "locks", "p.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	f.WriteString("pid 4242 since 2026-01-01T00:00:00Z\n")
	r := e.run("run", "p")
	r.mustCode(t, 1)
	if !strings.Contains(r.stderr, "policy p is already running (pid 4242 since 2026-01-01T00:00:00Z)") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	// --once finds it running elsewhere: it says so, records no failure and
	// exits 0 (the other process does the work).
	once := e.run("--once")
	once.mustCode(t, 0)
	if !strings.Contains(once.stdout+once.stderr, "another aegis-agent process is running this policy") {
		t.Errorf("--once does not say the policy runs elsewhere:\n%s%s", once.stdout, once.stderr)
	}
	if st := entry(t, e.status("p.yaml"), v1.KindBackupPolicy, "p"); st.LastRun != nil {
		t.Errorf("--once recorded a run of a policy another process holds: %+v", st.LastRun)
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	e.run("run", "p").mustCode(t, 0)
}

// plantSnapshot writes a hand-made snapshot (no compression, no
// encryption) holding tarBody, with a correct manifest.
func plantSnapshot(t *testing.T, destDir, host, policy, source string, tarBody []byte) string {
	t.Helper()
	id := v1.NewSnapshotID(time.Now())
	dir := filepath.Join(destDir, host, policy, source, id)
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "files.tar"), tarBody, 0o600)
	sum := sha256.Sum256(tarBody)
	m := v1.SnapshotManifest{
		FormatVersion: 1, ID: id, Time: time.Now().UTC(), Host: host, Policy: policy, Source: source, SourceKind: "files",
		Compression: v1.SnapshotCodec{Algorithm: "none"}, Encryption: v1.SnapshotCodec{Algorithm: "none"},
		Objects: []v1.SnapshotObject{{Name: "files.tar", Key: "files.tar", Format: "tar", Size: int64(len(tarBody)), SHA256: hex.EncodeToString(sum[:]), RawSize: int64(len(tarBody))}},
	}
	body, _ := json.Marshal(m)
	os.WriteFile(filepath.Join(dir, "manifest.json"), body, 0o600)
	return id
}

func TestRestoreRefusesEntriesOutsideTarget(t *testing.T) {
	e := newEnv(t)
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+smallPolicy("p", "disk"))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body string) {
		h.Size = int64(len(body))
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		tw.WriteHeader(h)
		tw.Write([]byte(body))
	}
	add(&tar.Header{Name: "ok/good.txt", Typeflag: tar.TypeReg}, "good\n")
	add(&tar.Header{Name: "../evil.txt", Typeflag: tar.TypeReg}, "evil\n")
	add(&tar.Header{Name: "/tmp/aegis-abs-evil.txt", Typeflag: tar.TypeReg}, "evil\n")
	add(&tar.Header{Name: "ok/link", Typeflag: tar.TypeSymlink, Linkname: e.root}, "")
	add(&tar.Header{Name: "ok/link/through-link.txt", Typeflag: tar.TypeReg}, "evil\n")
	tw.Close()
	host, _ := os.Hostname()
	plantSnapshot(t, filepath.Join(e.root, "backups"), host, "p", "files", buf.Bytes())

	target := filepath.Join(e.root, "restore")
	// The policy encrypts; a plain snapshot could be a swap and is refused
	// unless the user vouches for it.
	r := e.run("restore", "p", "--target", target)
	r.mustCode(t, 1)
	if !strings.Contains(r.stderr, "says it is not encrypted, so nothing proves who wrote it; its policy encrypts with age") {
		t.Errorf("unencrypted snapshot of an encrypted policy:\n%s", r.stderr)
	}
	r = e.run("restore", "p", "--target", target, "--allow-unencrypted")
	r.mustCode(t, 1)
	for _, name := range []string{`"../evil.txt"`, `"/tmp/aegis-abs-evil.txt"`, `"ok/link/through-link.txt"`} {
		if !strings.Contains(r.stderr, name) {
			t.Errorf("error does not name %s:\n%s", name, r.stderr)
		}
	}
	for _, p := range []string{filepath.Join(e.root, "evil.txt"), filepath.Join(e.root, "restore", "evil.txt"), "/tmp/aegis-abs-evil.txt", filepath.Join(e.root, "through-link.txt")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s was written outside the target", p)
		}
	}
	if b, err := os.ReadFile(filepath.Join(target, "files", "ok", "good.txt")); err != nil || string(b) != "good\n" {
		t.Errorf("good entry: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(target, "files", ".aegis-restore-incomplete")); err != nil {
		t.Errorf("a refused restore must stay marked incomplete: %v", err)
	}
}

func TestRestoreDetectsDamagedObject(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+smallPolicy("p", "disk"))
	e.run("--once").mustCode(t, 0)
	snaps := e.snapshots("p")
	m := snaps[0].Manifest
	obj := filepath.Join(e.root, "backups", m.Host, "p", "files", m.ID, m.Objects[0].Key)
	body, _ := os.ReadFile(obj)
	body[len(body)/2] ^= 0xff
	os.WriteFile(obj, body, 0o600)

	r := e.run("verify", "p", "--identity", e.identity)
	r.mustCode(t, 1)
	if !strings.Contains(r.stdout, "snapshot "+m.ID+", object "+m.Objects[0].Key) {
		t.Errorf("verify does not name the snapshot and object:\n%s", r.stdout)
	}
	r = e.run("restore", "p", "--identity", e.identity, "--target", filepath.Join(e.root, "r"))
	r.mustCode(t, 1)
	if !strings.Contains(r.stderr, "snapshot "+m.ID+", object "+m.Objects[0].Key) {
		t.Errorf("restore does not name the snapshot and object:\n%s", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(e.root, "r", "files", ".aegis-restore-incomplete")); err != nil {
		t.Errorf("damaged restore not marked incomplete: %v", err)
	}
}

func TestLostStateIsRebuiltFromDestinations(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+smallPolicy("p", "disk"))
	e.run("--once").mustCode(t, 0)
	if err := os.RemoveAll(e.state); err != nil {
		t.Fatal(err)
	}
	r := e.run("--once")
	r.mustCode(t, 0)
	if !strings.Contains(r.stderr, "nothing was due") || !strings.Contains(r.stderr, "its newest snapshot on the destinations sets the schedule") {
		t.Errorf("--once after losing the state:\n%s", r.stderr)
	}
	if n := len(manifestsUnder(t, filepath.Join(e.root, "backups"))); n != 1 {
		t.Errorf("%d snapshots, want 1: losing the state must not cause a needless run", n)
	}
	st := entry(t, e.status("p.yaml"), v1.KindBackupPolicy, "p")
	if st.LastSuccessfulTime == nil {
		t.Errorf("status after rebuilding the state: %+v", st)
	}
}

func TestStatusDir(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+smallPolicy("p", "disk"))
	statusDir := filepath.Join(e.root, "status")
	e.run("--once", "--status-dir", statusDir).mustCode(t, 0)
	if _, err := os.Stat(filepath.Join(e.config, "p.status.yaml")); !os.IsNotExist(err) {
		t.Errorf("a sidecar was written beside the manifest despite --status-dir: %v", err)
	}
	body, err := os.ReadFile(filepath.Join(statusDir, "p.status.yaml"))
	if err != nil || !strings.Contains(string(body), "reason: BackupSucceeded") {
		t.Errorf("status in --status-dir: %v\n%s", err, body)
	}
	// The same through the environment twin, as the contract says.
	cmd := e.command("status", "--json")
	cmd.Env = append(cmd.Env, "AEGIS_STATUS_DIR="+statusDir)
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), `"p"`) {
		t.Errorf("status --json with AEGIS_STATUS_DIR: %v\n%s", err, out)
	}
}
