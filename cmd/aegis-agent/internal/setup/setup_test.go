package setup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

func testDirs(t *testing.T) Dirs {
	root := t.TempDir()
	return Dirs{Config: filepath.Join(root, "config"), Keys: filepath.Join(root, "keys"), Secrets: filepath.Join(root, "secrets")}
}

// fullAnswers uses every kind of destination and source, and a secret of
// each sort.
func fullAnswers(t *testing.T) *Answers {
	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(knownHosts, []byte("box.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"), 0o644)
	t.Setenv("TEST_S3_KEY", "AKIAEXAMPLE")
	t.Setenv("TEST_S3_SECRET", "s3-secret-value")
	t.Setenv("TEST_PG", "pg-secret-value")
	g := false
	a := NewAnswers()
	a.Policy = "web"
	a.TimeZone = "Europe/Berlin"
	a.Destinations = []DestinationAnswer{
		{Name: "disk", DestinationSpec: v1.DestinationSpec{Local: &v1.LocalDestination{Path: "/var/backups/aegis"}}},
		{Name: "b2", DestinationSpec: v1.DestinationSpec{S3: &v1.S3Destination{Provider: "b2", Bucket: "acme", Region: "us-west-004"}},
			AccessKeyID: &Secret{Env: "TEST_S3_KEY"}, SecretAccessKey: &Secret{Env: "TEST_S3_SECRET"}},
		{Name: "box", DestinationSpec: v1.DestinationSpec{SFTP: &v1.SFTPDestination{Host: "box.example.com", User: "u", Path: "/b", KnownHostsFile: knownHosts}},
			Password: TypedSecret("sftp-secret-value")},
	}
	a.Sources = []SourceAnswer{
		{Source: v1.Source{Name: "site", Files: &v1.FilesSource{Paths: []string{"/var/www"}, Exclude: []string{"**/*.log", "no"}, OneFileSystem: true}}},
		{Source: v1.Source{Name: "db", Postgres: &v1.PostgresSource{Host: "db.internal", User: "backup", Globals: &g}}, Password: &Secret{Env: "TEST_PG"}},
		{Source: v1.Source{Name: "vols", DockerVolume: &v1.DockerVolumeSource{Selector: map[string]string{"backup": "yes"}}}},
		{Source: v1.Source{Name: "system", System: &v1.SystemSource{}}},
	}
	a.Notify = &v1.Notify{Ping: "https://hc-ping.com/x", Webhooks: []v1.WebhookNotify{{URL: "https://chat.example.com/h"}}}
	return a
}

// TestPrepareSetupRoundTrip: the manifests validate, hold no secret, and
// read back into the same answers, which render the same bytes again:
// what re-running init (or --non-interactive on an existing setup) relies
// on.
func TestPrepareSetupRoundTrip(t *testing.T) {
	dirs := testDirs(t)
	a := fullAnswers(t)
	plan, err := Prepare(a, dirs, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Problems) > 0 {
		t.Fatalf("problems: %v\n%s", plan.Problems, plan.Manifest)
	}
	body := string(plan.Manifest)
	for _, secret := range []string{"s3-secret-value", "pg-secret-value", "sftp-secret-value", "AGE-SECRET-KEY"} {
		if strings.Contains(body, secret) {
			t.Errorf("the manifest holds a secret (%s):\n%s", secret, body)
		}
	}
	// "no" stays a string for every YAML reader.
	if !strings.Contains(body, `exclude: ['**/*.log', "no"]`) || !strings.Contains(body, `backup: "yes"`) {
		t.Errorf("exclude list not as expected:\n%s", body)
	}
	checkSecretFiles(t, plan, dirs)
	if _, err := Write(plan, dirs); err != nil {
		t.Fatal(err)
	}
	for _, f := range plan.Files {
		fi, err := os.Stat(f.Path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v", f.Path, err, fi.Mode())
		}
	}

	existing, names, err := LoadExisting(dirs, "")
	if err != nil || existing == nil {
		t.Fatalf("LoadExisting: %v, %v (policies %v)", existing, err, names)
	}
	again, err := Prepare(existing.Answers, dirs, existing.File)
	if err != nil {
		t.Fatal(err)
	}
	if string(again.Manifest) != body {
		t.Errorf("re-rendered from the written manifests:\n%s\nwant:\n%s", again.Manifest, body)
	}
	if existing.Answers.Encryption.IdentityFile != IdentityPath(dirs, "web") {
		t.Errorf("the generated identity is not found again: %q", existing.Answers.Encryption.IdentityFile)
	}
	if len(again.Files) != 0 {
		t.Errorf("editing without new secrets would write %d file(s)", len(again.Files))
	}

	checkSavedAnswers(t, existing.Answers, dirs, body)
}

// checkSecretFiles: each secret goes into a file of its own.
func checkSecretFiles(t *testing.T, plan *Plan, dirs Dirs) {
	t.Helper()
	want := map[string]string{
		filepath.Join(dirs.Secrets, "b2.s3-credentials"): "[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = s3-secret-value\n",
		filepath.Join(dirs.Secrets, "box.password"):      "sftp-secret-value\n",
		filepath.Join(dirs.Secrets, "web-db.password"):   "pg-secret-value\n",
	}
	for _, f := range plan.Files {
		if w, ok := want[f.Path]; ok && string(f.Body) != w {
			t.Errorf("%s = %q, want %q", f.Path, f.Body, w)
		}
		delete(want, f.Path)
	}
	if len(want) > 0 {
		t.Errorf("not planned: %v", want)
	}
}

// checkSavedAnswers: saved answers, read back, render the same manifest
// bytes, and hold no secret.
func checkSavedAnswers(t *testing.T, a *Answers, dirs Dirs, body string) {
	t.Helper()
	// Saved answers give the same bytes too.
	saved, err := MarshalAnswers(a)
	if err != nil {
		t.Fatal(err)
	}
	af := filepath.Join(t.TempDir(), "answers.yaml")
	os.WriteFile(af, saved, 0o600)
	fromFile, err := ReadAnswersFile(af)
	if err != nil {
		t.Fatalf("%v\n%s", err, saved)
	}
	third, err := Prepare(fromFile, dirs, "")
	if err != nil {
		t.Fatal(err)
	}
	if string(third.Manifest) != body {
		t.Errorf("rendered from the saved answers:\n%s\nwant:\n%s", third.Manifest, body)
	}
	if strings.Contains(string(saved), "secret-value") {
		t.Errorf("saved answers hold a secret:\n%s", saved)
	}
}

// TestInitRefusesToRewriteSharedFile: init edits only a file that holds
// nothing but the policy and its destinations.
func TestInitRefusesToRewriteSharedFile(t *testing.T) {
	dirs := testDirs(t)
	os.MkdirAll(dirs.Config, 0o755)
	two := `apiVersion: aegis.io/v1
kind: Destination
metadata: {name: disk}
spec: {local: {path: /tmp/x}}
---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: a}
spec: {schedule: "@daily", sources: [{name: s, files: {paths: [/etc]}}], destinations: [disk], encryption: {none: true}}
---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: b}
spec: {schedule: "@daily", sources: [{name: s, files: {paths: [/etc]}}], destinations: [disk], encryption: {none: true}}
`
	os.WriteFile(filepath.Join(dirs.Config, "all.yaml"), []byte(two), 0o644)
	_, _, err := LoadExisting(dirs, "a")
	if err == nil || !strings.Contains(err.Error(), "holds BackupPolicy/b besides policy a") {
		t.Fatalf("err = %v", err)
	}
}

func TestFlagSpecs(t *testing.T) {
	d, err := DestinationFromFlag("type=s3,provider=minio,endpoint=http://127.0.0.1:9000,bucket=b,access-key-id-env=K,secret-access-key-from-file=/run/s")
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "minio" || d.S3.Endpoint != "http://127.0.0.1:9000" || d.AccessKeyID.Env != "K" || d.SecretAccessKey.File != "/run/s" {
		t.Errorf("got %+v %+v", d, d.S3)
	}
	s, err := SourceFromFlag("type=files,path=/etc,path=/srv,exclude=*.log,one-file-system=true")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Files.Paths, " "); got != "/etc /srv" || !s.Files.OneFileSystem || s.Name != "files" {
		t.Errorf("got %+v", s.Files)
	}
	s, err = SourceFromFlag("type=docker-volume,label=backup=true,stop-containers=true")
	if err != nil || s.DockerVolume.Selector["backup"] != "true" || !s.DockerVolume.StopContainers || s.Name != "docker" {
		t.Errorf("got %+v, %v", s.DockerVolume, err)
	}
	for _, bad := range []struct{ spec, want string }{
		{"type=files,pth=/etc", "unknown key(s) pth"},
		{"type=tape", `type="tape" is not one of`},
		{"type=postgres,port=five", `port="five" is not a number`},
		{"files", `"files" is not key=value`},
	} {
		_, err := SourceFromFlag(bad.spec)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: err = %v, want %q", bad.spec, err, bad.want)
		}
	}
	r, err := RetentionFromFlag("hourly=24,daily=7,within=3d")
	if err != nil || r.Hourly != 24 || r.Daily != 7 || r.Within != "3d" {
		t.Errorf("retention %+v, %v", r, err)
	}
}

func TestAnswerChecks(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"name", CheckName("Web_1"), `such as "web-1"`},
		{"bucket", CheckBucket("My_Bucket"), "not a valid bucket name"},
		{"bucket ip", CheckBucket("192.168.1.1"), "looks like an IP address"},
		{"endpoint", CheckEndpoint(true)(""), "needs an endpoint URL"},
		{"schedule", CheckSchedule("UTC")("every day"), "use 5 cron fields"},
		{"zone", CheckTimeZone("Mars/Olympus"), "IANA name"},
		{"count", CheckCount("-1"), "0 or more"},
		{"recipient secret", CheckRecipients("AGE-SECRET-KEY-1XYZ"), "that is a secret key"},
		{"recipient", CheckRecipients("age1nope"), "not an age public key"},
		{"path", CheckPathList("/nonexistent-aegis-path"), "does not exist on this host"},
		{"relative", CheckLocalTarget("backups"), "not an absolute path"},
		{"port", CheckPort("70000"), "1 to 65535"},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, c.err, c.want)
		}
	}
	for _, ok := range []error{CheckName("web-1"), CheckBucket("acme-backups"), CheckSchedule("UTC")("@every 6h"),
		CheckLocalTarget("/var/backups/aegis/new/dir"), CheckRecipients("age1nftmjkjz99yl4xxjrt74epwytwfupuc4ppfcxfwa2sp74l5wr92ssfus8k")} {
		if ok != nil {
			t.Errorf("refused a good answer: %v", ok)
		}
	}
}
