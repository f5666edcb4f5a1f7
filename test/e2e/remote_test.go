package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/test/testenv"
)

// remoteServer is a test server of one kind (s3, sftp, ftp), shared or of
// the test's own, and a directory (or prefix) on it for the test.
type remoteServer struct {
	kind string
	env  map[string]string
	dir  string // private servers: their state directory
	root string // s3: the prefix; sftp, ftp: the absolute path (on this host too)
}

var remoteVars = map[string][]string{
	"s3": {"AEGIS_TEST_S3_ENDPOINT", "AEGIS_TEST_S3_BUCKET", "AEGIS_TEST_S3_CREDENTIALS_FILE",
		"AEGIS_TEST_S3_ACCESS_KEY", "AEGIS_TEST_S3_SECRET_KEY", "AEGIS_TEST_S3_DATA_DIR", "AEGIS_TEST_RCLONE"},
	"sftp": {"AEGIS_TEST_SFTP_HOST", "AEGIS_TEST_SFTP_PORT", "AEGIS_TEST_SFTP_USER", "AEGIS_TEST_SFTP_KEY_FILE",
		"AEGIS_TEST_SFTP_KNOWN_HOSTS", "AEGIS_TEST_SFTP_PATH", "AEGIS_TEST_SFTP_READONLY_PATH"},
	"ftp": {"AEGIS_TEST_FTP_HOST", "AEGIS_TEST_FTP_PORT", "AEGIS_TEST_FTP_USER", "AEGIS_TEST_FTP_PASSWORD_FILE",
		"AEGIS_TEST_FTP_CA_FILE", "AEGIS_TEST_FTP_PATH"},
}

var remoteWhat = map[string]string{"s3": "S3 server", "sftp": "SFTP server", "ftp": "FTP server"}

func sharedRemote(t *testing.T, kind string) *remoteServer {
	t.Helper()
	r := &remoteServer{kind: kind, env: testenv.Require(t, remoteWhat[kind], remoteVars[kind]...)}
	r.root = r.freshRoot(t)
	return r
}

// privateRemote starts a server of the test's own with hack/server-KIND.sh,
// for tests that stop or kill it.
func privateRemote(t *testing.T, kind string) *remoteServer {
	t.Helper()
	testenv.Require(t, remoteWhat[kind], remoteVars[kind]...)
	// Under /tmp, not t.TempDir(): the servers' test user must reach it.
	dir, err := os.MkdirTemp("", "aegis-e2e-"+kind+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	r := &remoteServer{kind: kind, dir: dir}
	// Stop (and unmount) even when the start fails half way.
	t.Cleanup(func() { r.script(t, "stop") })
	r.env = r.script(t, "start")
	r.root = r.freshRoot(t)
	return r
}

func (r *remoteServer) freshRoot(t *testing.T) string {
	name := strings.ReplaceAll(t.Name(), "/", "-") + "-" + fmt.Sprint(time.Now().UnixNano()%1e9)
	switch r.kind {
	case "s3":
		return "e2e/" + name
	case "sftp":
		return filepath.Join(r.env["AEGIS_TEST_SFTP_PATH"], name)
	default:
		return filepath.Join(r.env["AEGIS_TEST_FTP_PATH"], name)
	}
}

// script runs hack/server-KIND.sh CMD DIR and returns what it exports.
func (r *remoteServer) script(t *testing.T, cmd string) map[string]string {
	return testenv.ServerScript(t, r.kind, cmd, r.dir)
}

// destination is a Destination manifest for this server, below root.
func (r *remoteServer) destination(name string) string {
	head := "apiVersion: aegis.io/v1\nkind: Destination\nmetadata:\n  name: " + name + "\nspec:\n"
	e := r.env
	switch r.kind {
	case "s3":
		return head + `  s3:
    provider: other
    endpoint: ` + e["AEGIS_TEST_S3_ENDPOINT"] + `
    bucket: ` + e["AEGIS_TEST_S3_BUCKET"] + `
    prefix: ` + r.root + `
    credentialsFile: ` + e["AEGIS_TEST_S3_CREDENTIALS_FILE"] + `
    partSizeMiB: 5
    parallelUploads: 2
`
	case "sftp":
		return head + `  sftp:
    host: ` + e["AEGIS_TEST_SFTP_HOST"] + `
    port: ` + e["AEGIS_TEST_SFTP_PORT"] + `
    user: ` + e["AEGIS_TEST_SFTP_USER"] + `
    path: ` + r.root + `
    privateKeyFile: ` + e["AEGIS_TEST_SFTP_KEY_FILE"] + `
    knownHostsFile: ` + e["AEGIS_TEST_SFTP_KNOWN_HOSTS"] + `
`
	default:
		return head + `  ftp:
    host: ` + e["AEGIS_TEST_FTP_HOST"] + `
    port: ` + e["AEGIS_TEST_FTP_PORT"] + `
    user: ` + e["AEGIS_TEST_FTP_USER"] + `
    passwordFile: ` + e["AEGIS_TEST_FTP_PASSWORD_FILE"] + `
    path: ` + r.root + `
    tls: explicit
    caFile: ` + e["AEGIS_TEST_FTP_CA_FILE"] + `
`
	}
}

// rclone runs the distribution's rclone on the S3 server: a client that is
// not ours. The host's AWS_CA_BUNDLE is left out: rclone's S3 client fails
// on it for a plain-HTTP endpoint.
func (r *remoteServer) rclone(t *testing.T, args ...string) []byte {
	t.Helper()
	c := exec.Command(r.env["AEGIS_TEST_RCLONE"], append([]string{"--config", "/dev/null"}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "RCLONE_") {
			c.Env = append(c.Env, kv)
		}
	}
	c.Env = append(c.Env,
		"RCLONE_CONFIG_T_TYPE=s3", "RCLONE_CONFIG_T_PROVIDER=Other", "RCLONE_CONFIG_T_FORCE_PATH_STYLE=true",
		"RCLONE_CONFIG_T_ENDPOINT="+r.env["AEGIS_TEST_S3_ENDPOINT"],
		"RCLONE_CONFIG_T_ACCESS_KEY_ID="+r.env["AEGIS_TEST_S3_ACCESS_KEY"],
		"RCLONE_CONFIG_T_SECRET_ACCESS_KEY="+r.env["AEGIS_TEST_S3_SECRET_KEY"])
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		t.Fatalf("rclone %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}

// files lists what the server holds below root, hidden and temporary
// files included, as key → SHA-256, read without Aegis: with rclone for
// S3, from the server's own files on disk for SFTP and FTP.
func (r *remoteServer) files(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	if r.kind == "s3" {
		remote := "t:" + r.env["AEGIS_TEST_S3_BUCKET"] + "/" + r.root
		for _, line := range strings.Split(strings.TrimSpace(string(r.rclone(t, "lsf", "-R", "--files-only", remote))), "\n") {
			if line == "" {
				continue
			}
			sum := sha256.Sum256(r.rclone(t, "cat", remote+"/"+line))
			out[line] = hex.EncodeToString(sum[:])
		}
		return out
	}
	filepath.WalkDir(r.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(r.root, p)
		body, _ := os.ReadFile(p)
		sum := sha256.Sum256(body)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
		return nil
	})
	return out
}

// unfinishedUploads lists the multipart uploads rclone sees below root
// (S3 only).
func (r *remoteServer) unfinishedUploads(t *testing.T) []string {
	t.Helper()
	if r.kind != "s3" {
		return nil
	}
	var res map[string][]struct{ Key, UploadID string }
	body := r.rclone(t, "backend", "list-multipart-uploads", "t:"+r.env["AEGIS_TEST_S3_BUCKET"]+"/"+r.root)
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("rclone list-multipart-uploads: %v\n%s", err, body)
	}
	var out []string
	for _, ups := range res {
		for _, u := range ups {
			if strings.HasPrefix(u.Key, r.root+"/") {
				out = append(out, u.Key+" "+u.UploadID)
			}
		}
	}
	return out
}

// uploading reports whether an upload is on its way to the server: a
// multipart upload in the S3 gateway's files, a temporary file on the
// SFTP or FTP server.
func (r *remoteServer) uploading() bool {
	found := false
	dir := r.root
	if r.kind == "s3" {
		dir = filepath.Join(r.env["AEGIS_TEST_S3_DATA_DIR"], r.env["AEGIS_TEST_S3_BUCKET"], ".sgwtmp", "multipart")
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (r.kind == "s3" || strings.HasPrefix(d.Name(), ".aegis-tmp-")) {
			found = true
			return fs.SkipAll
		}
		return nil
	})
	return found
}

// layout lists a local destination's files below dir as key → SHA-256:
// the documented layout a remote destination must hold too.
func layout(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		body, err := os.ReadFile(p)
		sum := sha256.Sum256(body)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffLayouts(want, got map[string]string) []string {
	var diffs []string
	for k, v := range want {
		switch g, ok := got[k]; {
		case !ok:
			diffs = append(diffs, "missing on the server: "+k)
		case g != v:
			diffs = append(diffs, "different content: "+k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, "unexpected on the server: "+k)
		}
	}
	sort.Strings(diffs)
	return diffs
}

// hybridPolicy backs up ROOT/src/www to a local disk and to the remote
// destination "cloud", keeping the last snapshot.
const hybridPolicy = `apiVersion: aegis.io/v1
kind: Destination
metadata:
  name: disk
spec:
  local:
    path: @ROOT@/backups
---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: web
spec:
  schedule: "0 3 * * *"
  sources:
    - name: site
      files:
        paths: ["@ROOT@/src/www"]
        exclude: ["**/*.log", "**/cache/**"]
  destinations: [disk, cloud]
  encryption:
    age:
      recipients: ["@RECIPIENT@"]
  retention:
    keepLast: 1
`

// TestRemoteBackupRestore: a policy backs up a generated tree to a local
// disk and to each kind of remote server at once; both get the same bytes
// in the documented layout (checked with a client that is not Aegis), with
// nothing temporary left; snapshots, restore and verify work from the
// server; a second run's retention deletes the first snapshot there.
func TestRemoteBackupRestore(t *testing.T) {
	for _, kind := range []string{"s3", "sftp", "ftp"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := sharedRemote(t, kind)
			e := newEnv(t)
			src := filepath.Join(e.root, "src")
			makeTree(t, src, 64<<20)
			e.write("cloud.yaml", srv.destination("cloud"))
			e.write("web.yaml", hybridPolicy)

			e.run("--once").mustCode(t, 0)
			st := e.status("web.yaml")
			if c := condition(t, entry(t, st, v1.KindBackupPolicy, "web"), v1.ConditionReady); c.Status != v1.ConditionTrue {
				t.Fatalf("Ready = %+v", c)
			}
			cs := e.status("cloud.yaml")
			if c := condition(t, entry(t, cs, v1.KindDestination, "cloud"), v1.ConditionReachable); c.Status != v1.ConditionTrue {
				t.Errorf("cloud Reachable = %+v", c)
			}

			// Both destinations list the same snapshot, with the same objects.
			snaps := e.snapshots("web")
			if len(snaps) != 2 {
				t.Fatalf("snapshots: %d, want 2 (disk and cloud): %+v", len(snaps), snaps)
			}
			if a, b := snaps[0].Manifest, snaps[1].Manifest; a.ID != b.ID || len(a.Objects) != 1 || len(b.Objects) != 1 || a.Objects[0].SHA256 != b.Objects[0].SHA256 {
				t.Errorf("the destinations hold different snapshots:\n%+v\n%+v", a, b)
			}
			first := snaps[0].Manifest.ID

			// The server holds exactly what the local destination holds.
			want := layout(t, filepath.Join(e.root, "backups"))
			if d := diffLayouts(want, srv.files(t)); len(d) > 0 {
				t.Errorf("server layout differs from the local destination's:\n%s", strings.Join(d, "\n"))
			}
			if u := srv.unfinishedUploads(t); len(u) > 0 {
				t.Errorf("unfinished multipart uploads: %v", u)
			}

			// Restore and verify from the server.
			target := filepath.Join(e.root, "restore")
			e.run("restore", "web", "--from", "cloud", "--identity", e.identity, "--target", target).mustCode(t, 0)
			compareTrees(t, withoutExcluded(t, filepath.Join(src, "www")), filepath.Join(target, "site", strings.TrimPrefix(src, "/"), "www"))
			r := e.run("verify", "web", "--from", "cloud", "--identity", e.identity)
			r.mustCode(t, 0)
			if !strings.Contains(r.stdout, "ok   web/site "+first+" on cloud") {
				t.Errorf("verify from cloud:\n%s", r.stdout)
			}

			// A second run; retention (keepLast: 1) removes the first
			// snapshot on the server too.
			os.WriteFile(filepath.Join(src, "www", "new.txt"), []byte("second run\n"), 0o644)
			time.Sleep(1100 * time.Millisecond) // snapshot IDs are to the second
			e.run("run", "web").mustCode(t, 0)
			e.run("prune", "web").mustCode(t, 0)
			snaps = e.snapshots("web", "--destination", "cloud")
			if len(snaps) != 1 || snaps[0].Manifest.ID == first {
				t.Fatalf("cloud snapshots after retention: %+v, want only the second", snaps)
			}
			got := srv.files(t)
			if d := diffLayouts(layout(t, filepath.Join(e.root, "backups")), got); len(d) > 0 {
				t.Errorf("after retention, the server differs from the local destination:\n%s", strings.Join(d, "\n"))
			}
			for k := range got {
				if strings.Contains(k, first) {
					t.Errorf("retention left %s on the server", k)
				}
			}
		})
	}
}

// TestRemoteServerDown: the server is down when the run starts. The run
// fails for that destination, with the reason in the policy's and the
// destination's status, while the local destination gets its snapshot;
// the next run, with the server back, stores it there too.
func TestRemoteServerDown(t *testing.T) {
	for _, kind := range []string{"s3", "sftp", "ftp"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := privateRemote(t, kind)
			e := newEnv(t)
			smallTree(t, e)
			os.MkdirAll(filepath.Join(e.root, "src", "www"), 0o755)
			os.WriteFile(filepath.Join(e.root, "src", "www", "index.html"), []byte("<h1>hi</h1>\n"), 0o644)
			e.write("cloud.yaml", srv.destination("cloud"))
			e.write("web.yaml", hybridPolicy)
			srv.script(t, "stop")

			r := e.run("--once")
			r.mustCode(t, 1)
			st := entry(t, e.status("web.yaml"), v1.KindBackupPolicy, "web")
			c := condition(t, st, v1.ConditionReady)
			if c.Status != v1.ConditionFalse || c.Reason != "BackupPartiallyFailed" ||
				!strings.Contains(c.Message, "destination cloud") || !strings.Contains(c.Message, "connection refused") {
				t.Errorf("policy Ready = %+v", c)
			}
			if st.LastRun == nil || st.LastRun.Result != v1.ResultPartiallyFailed {
				t.Fatalf("last run = %+v", st.LastRun)
			}
			dc := condition(t, entry(t, e.status("cloud.yaml"), v1.KindDestination, "cloud"), v1.ConditionReachable)
			if dc.Status != v1.ConditionFalse || !strings.Contains(dc.Message, "connection refused") || !strings.Contains(dc.Message, "gave up after") {
				t.Errorf("cloud Reachable = %+v", dc)
			}
			if n := len(e.snapshots("web", "--destination", "disk")); n != 1 {
				t.Errorf("disk snapshots: %d, want 1", n)
			}

			srv.script(t, "start")
			e.run("--once").mustCode(t, 0)
			if n := len(e.snapshots("web", "--destination", "cloud")); n != 1 {
				t.Errorf("cloud snapshots after the server came back: %d, want 1", n)
			}
			dc = condition(t, entry(t, e.status("cloud.yaml"), v1.KindDestination, "cloud"), v1.ConditionReachable)
			if dc.Status != v1.ConditionTrue {
				t.Errorf("cloud Reachable after the server came back = %+v", dc)
			}
		})
	}
}

// TestRemoteServerKilledMidUpload: the server dies while a large object is
// on its way. The local destination still gets the snapshot; the server
// shows none; once it is back, the unfinished upload is cleaned up before
// the run ends (on S3: no multipart upload left); the next run succeeds.
func TestRemoteServerKilledMidUpload(t *testing.T) {
	for _, kind := range []string{"s3", "sftp", "ftp"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := privateRemote(t, kind)
			e := newEnv(t)
			// Incompressible data, so that the upload takes a while.
			www := filepath.Join(e.root, "src", "www")
			os.MkdirAll(www, 0o755)
			os.WriteFile(filepath.Join(www, "random.bin"), randomBytes(160<<20), 0o644)
			e.write("cloud.yaml", srv.destination("cloud"))
			e.write("web.yaml", hybridPolicy)

			cmd := e.command("run", "web")
			stderr, _ := cmd.StderrPipe()
			var out bytes.Buffer
			cmd.Stdout = &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var log syncBuffer
			lines := make(chan string, 1000)
			go func() {
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					log.Write([]byte(sc.Text() + "\n"))
					select {
					case lines <- sc.Text():
					default:
					}
				}
				close(lines)
			}()
			waitFor(t, "an upload in progress", 60*time.Second, srv.uploading)
			srv.script(t, "kill")
			// Bring the server back once the upload was given up and its
			// cleanup deferred, so that the cleanup can finish.
			deadline := time.After(2 * time.Minute)
		wait:
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						break wait
					}
					if strings.Contains(l, "retrying in the background") {
						break wait
					}
				case <-deadline:
					t.Fatalf("no deferred cleanup logged:\n%s", log.String())
				}
			}
			srv.script(t, "start")
			err := cmd.Wait()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			if code != 1 {
				t.Fatalf("run: exit code %d, want 1\n%s", code, log.String())
			}
			if !strings.Contains(log.String(), "cleanup done after retrying") {
				t.Errorf("the deferred cleanup did not finish:\n%s", log.String())
			}
			st := entry(t, e.status("web.yaml"), v1.KindBackupPolicy, "web")
			if st.LastRun == nil || st.LastRun.Result != v1.ResultPartiallyFailed {
				t.Fatalf("last run = %+v", st.LastRun)
			}
			var cloud v1.DestinationResult
			for _, d := range st.LastRun.Destinations {
				if d.Name == "cloud" {
					cloud = d
				}
			}
			if cloud.Result != v1.ResultFailed || !strings.Contains(cloud.Error, "upload") {
				t.Errorf("cloud result = %+v", cloud)
			}
			if c := condition(t, st, v1.ConditionReady); !strings.Contains(c.Message, "destination cloud") {
				t.Errorf("Ready = %+v", c)
			}
			if n := len(e.snapshots("web", "--destination", "disk")); n != 1 {
				t.Errorf("disk snapshots: %d, want 1", n)
			}
			if files := srv.files(t); len(files) != 0 {
				t.Errorf("left on the server: %v", keys(files))
			}
			if u := srv.unfinishedUploads(t); len(u) > 0 {
				t.Errorf("unfinished multipart uploads: %v", u)
			}

			e.run("run", "web").mustCode(t, 0)
			if n := len(e.snapshots("web", "--destination", "cloud")); n != 1 {
				t.Errorf("cloud snapshots after the next run: %d, want 1", n)
			}
		})
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	var seed [32]byte
	h := sha256.New()
	// A fast reproducible stream: SHA-256 in counter mode.
	for off := 0; off < n; off += len(seed) {
		h.Reset()
		fmt.Fprint(h, off)
		copy(b[off:], h.Sum(seed[:0]))
	}
	return b
}

// TestRemoteFaults: what an operator gets when a remote destination is
// misconfigured or cannot take the backup: a failed destination, the
// reason in the policy's (and, where the check failed, the destination's)
// status, the local destination's snapshot still made, no secret shown.
func TestRemoteFaults(t *testing.T) {
	type fault struct {
		name, kind string
		// dest edits the destination manifest; it may return a secret that
		// must not appear anywhere.
		dest    func(t *testing.T, srv *remoteServer, yaml string) (string, string)
		want    []string
		checked bool // the destination's check fails (Reachable False)
	}
	replaceLine := func(yaml, key, value string) string {
		var out []string
		for _, l := range strings.Split(yaml, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), key+":") {
				l = l[:strings.Index(l, key)] + key + ": " + value
			}
			out = append(out, l)
		}
		return strings.Join(out, "\n")
	}
	writeSecret := func(t *testing.T, body string) string {
		p := filepath.Join(t.TempDir(), "secret")
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	for _, f := range []fault{
		{
			name: "s3 wrong credentials", kind: "s3", checked: true,
			dest: func(t *testing.T, srv *remoteServer, y string) (string, string) {
				const wrong = "Wrong0Secret0Key0For0The0Test0x"
				p := writeSecret(t, "[default]\naws_access_key_id = "+srv.env["AEGIS_TEST_S3_ACCESS_KEY"]+"\naws_secret_access_key = "+wrong+"\n")
				return replaceLine(y, "credentialsFile", p), wrong
			},
			want: []string{"destination cloud is not usable", "Access Denied", "credentials"},
		},
		{
			name: "s3 missing bucket", kind: "s3", checked: true,
			dest: func(t *testing.T, srv *remoteServer, y string) (string, string) {
				return replaceLine(y, "bucket", "no-such-bucket"), ""
			},
			want: []string{"destination cloud is not usable", "bucket no-such-bucket does not exist"},
		},
		{
			name: "sftp unknown host key", kind: "sftp", checked: true,
			dest: func(t *testing.T, srv *remoteServer, y string) (string, string) {
				kh := filepath.Join(t.TempDir(), "known_hosts")
				os.WriteFile(kh, nil, 0o644)
				return replaceLine(y, "knownHostsFile", kh), ""
			},
			want: []string{"destination cloud is not usable", "host key of 127.0.0.1:", "is unknown", "SHA256:"},
		},
		{
			name: "sftp wrong password", kind: "sftp", checked: true,
			dest: func(t *testing.T, srv *remoteServer, y string) (string, string) {
				const wrong = "wrong-password-for-the-test"
				y = replaceLine(y, "privateKeyFile", "")
				y = strings.Replace(y, "    privateKeyFile: \n", "    passwordFile: "+writeSecret(t, wrong+"\n")+"\n", 1)
				return y, wrong
			},
			want: []string{"destination cloud is not usable", "login to 127.0.0.1:", "as aegistest failed"},
		},
		{
			name: "sftp read-only directory", kind: "sftp", checked: true,
			dest: func(t *testing.T, srv *remoteServer, y string) (string, string) {
				return replaceLine(y, "path", srv.env["AEGIS_TEST_SFTP_READONLY_PATH"]), ""
			},
			want: []string{"destination cloud is not usable", "permission denied"},
		},
		{
			name: "sftp full file system", kind: "sftp",
			dest: func(t *testing.T, srv *remoteServer, y string) (string, string) {
				full := testenv.Require(t, "a full remote file system", "AEGIS_TEST_SFTP_FULL_PATH")["AEGIS_TEST_SFTP_FULL_PATH"]
				return replaceLine(y, "path", filepath.Join(full, fmt.Sprint(time.Now().UnixNano()))), ""
			},
			want: []string{"destination cloud", "the remote file system is full"},
		},
		{
			name: "ftps untrusted certificate", kind: "ftp", checked: true,
			dest: func(t *testing.T, srv *remoteServer, y string) (string, string) {
				return strings.Replace(y, "    caFile: "+srv.env["AEGIS_TEST_FTP_CA_FILE"]+"\n", "", 1), ""
			},
			want: []string{"destination cloud is not usable", "TLS certificate of 127.0.0.1:", "is not trusted", "fingerprint", "caFile"},
		},
		{
			name: "ftp wrong password", kind: "ftp", checked: true,
			dest: func(t *testing.T, srv *remoteServer, y string) (string, string) {
				const wrong = "wrong-password-for-the-test"
				return replaceLine(y, "passwordFile", writeSecret(t, wrong+"\n")), wrong
			},
			want: []string{"destination cloud is not usable", "as aegistest failed", "530"},
		},
	} {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			srv := sharedRemote(t, f.kind)
			e := newEnv(t)
			os.MkdirAll(filepath.Join(e.root, "src", "www"), 0o755)
			// Random data: a full 2 MiB file system cannot take it.
			os.WriteFile(filepath.Join(e.root, "src", "www", "data.bin"), randomBytes(6<<20), 0o644)
			y, secret := f.dest(t, srv, srv.destination("cloud"))
			e.write("cloud.yaml", y)
			e.write("web.yaml", hybridPolicy)
			r := e.run("--once")
			r.mustCode(t, 1)
			st := entry(t, e.status("web.yaml"), v1.KindBackupPolicy, "web")
			c := condition(t, st, v1.ConditionReady)
			if c.Status != v1.ConditionFalse || c.Reason != "BackupPartiallyFailed" {
				t.Errorf("Ready = %+v", c)
			}
			for _, w := range f.want {
				if !strings.Contains(c.Message, w) {
					t.Errorf("Ready message lacks %q: %s", w, c.Message)
				}
			}
			dc := condition(t, entry(t, e.status("cloud.yaml"), v1.KindDestination, "cloud"), v1.ConditionReachable)
			if f.checked && (dc.Status != v1.ConditionFalse || !strings.Contains(dc.Message, f.want[1])) {
				t.Errorf("cloud Reachable = %+v", dc)
			}
			if n := len(e.snapshots("web", "--destination", "disk")); n != 1 {
				t.Errorf("disk snapshots: %d, want 1", n)
			}
			if secret != "" {
				everything := r.stdout + r.stderr + readAll(t, e.config) + readAll(t, e.logs)
				if strings.Contains(everything, secret) {
					t.Errorf("the secret appears in the output, status or logs")
				}
			}
			// Permanent errors are not retried.
			if strings.Contains(r.stderr, "retrying") && f.checked {
				t.Errorf("a permanent error was retried:\n%s", r.stderr)
			}
		})
	}
}

// readAll concatenates the files below dir.
func readAll(t *testing.T, dir string) string {
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			f, err := os.Open(p)
			if err == nil {
				io.Copy(&b, f)
				f.Close()
			}
		}
		return nil
	})
	return b.String()
}
