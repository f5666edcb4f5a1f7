package e2e

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aegis-backup/aegis/reconcile/observe"
	"github.com/creack/pty"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// obsPolicies is a policy that succeeds and one whose destination fails
// its check (its path lies under a regular file).
func obsPolicies(e *env, extraGood, extraBad string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.root, "plainfile"), nil, 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.write("good.yaml", destination("disk", "@ROOT@/backups")+"---\n"+smallPolicy("good", "disk")+extraGood)
	e.write("bad.yaml", destination("broken", "@ROOT@/plainfile/backups")+"---\n"+smallPolicy("bad", "broken")+extraBad)
}

// samples parses the text exposition format into name → labels → value,
// labels written as sorted k=v pairs.
func samples(t *testing.T, r io.Reader) map[string]map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	out := map[string]map[string]float64{}
	for name, f := range fams {
		out[name] = map[string]float64{}
		for _, m := range f.Metric {
			var pairs []string
			for _, l := range m.Label {
				pairs = append(pairs, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(pairs)
			v := m.GetGauge().GetValue()
			if m.Counter != nil {
				v = m.GetCounter().GetValue()
			}
			out[name][strings.Join(pairs, ",")] = v
		}
	}
	return out
}

func TestMetricsOverHTTP(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	obsPolicies(e, "", "")
	start := time.Now()
	cmd := e.command("--metrics-addr", "127.0.0.1:0", "--log-format", "json")
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
	addrRE := regexp.MustCompile(`"msg":"serving metrics","addr":"([^"]+)"`)
	var base string
	waitFor(t, "the metrics address in the log", 20*time.Second, func() bool {
		if m := addrRE.FindStringSubmatch(logs.String()); m != nil {
			base = "http://" + m[1]
		}
		return base != ""
	})
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var got map[string]map[string]float64
	waitFor(t, "both runs in the metrics", 30*time.Second, func() bool {
		code, body := get("/metrics")
		if code != 200 {
			return false
		}
		got = samples(t, strings.NewReader(body))
		r := got["aegis_backup_runs_total"]
		// The gauges are set by the pass that follows each run.
		_, goodSynced := got["aegis_backup_last_run_success"]["policy=good"]
		_, badSynced := got["aegis_backup_last_run_success"]["policy=bad"]
		return r["policy=good,result=Succeeded"] == 1 && r["policy=bad,result=Failed"] == 1 && goodSynced && badSynced &&
			got["aegis_destination_snapshots"]["destination=disk,policy=good,source=files"] == 1
	})
	if code, body := get("/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("/readyz: %d %q", code, body)
	}

	for _, c := range []struct {
		name, labels string
		check        func(v float64) bool
		what         string
	}{
		{"aegis_backup_last_run_success", "policy=good", eq(1), "1"},
		{"aegis_backup_last_run_success", "policy=bad", eq(0), "0"},
		{"aegis_backup_failures_total", "policy=bad,reason=destination_unreachable", eq(1), "1"},
		{"aegis_backup_consecutive_failures", "policy=bad", eq(1), "1"},
		{"aegis_backup_consecutive_failures", "policy=good", eq(0), "0"},
		{"aegis_backup_last_success_timestamp_seconds", "policy=good", between(start, time.Now()), "the run's start"},
		{"aegis_backup_last_attempt_timestamp_seconds", "policy=bad", between(start, time.Now()), "the run's start"},
		{"aegis_backup_schedule_interval_seconds", "policy=good", eq(86400), "86400"},
		{"aegis_backup_next_run_timestamp_seconds", "policy=good", after(time.Now()), "in the future"},
		{"aegis_source_last_read_bytes", "policy=good,source=files", eq(5), "5 (the tree's one file)"},
		{"aegis_source_last_written_bytes", "policy=good,source=files", positive, "> 0"},
		{"aegis_source_last_files", "policy=good,source=files", eq(1), "1"},
		{"aegis_source_last_success_timestamp_seconds", "policy=good,source=files", between(start, time.Now()), "the run's start"},
		{"aegis_source_last_duration_seconds", "policy=good,source=files", nonNegative, ">= 0"},
		{"aegis_destination_up", "destination=disk", eq(1), "1"},
		{"aegis_destination_up", "destination=broken", eq(0), "0"},
		{"aegis_destination_stored_bytes", "destination=disk,policy=good,source=files", positive, "> 0"},
		{"aegis_destination_newest_snapshot_timestamp_seconds", "destination=disk,policy=good,source=files", between(start.Add(-time.Second), time.Now()), "the run's start"},
		{"aegis_destination_written_bytes_total", "destination=disk,policy=good", positive, "> 0"},
		{"aegis_agent_policies", "", eq(2), "2"},
		{"aegis_agent_manifest_errors", "", eq(0), "0"},
		{"aegis_agent_last_reconcile_timestamp_seconds", "", between(start, time.Now()), "now"},
		{"aegis_agent_start_time_seconds", "", between(start.Add(-time.Second), time.Now()), "the start"},
		{"process_resident_memory_bytes", "", positive, "> 0"},
	} {
		v, ok := got[c.name][c.labels]
		if !ok {
			t.Errorf("%s{%s} missing; it has %v", c.name, c.labels, got[c.name])
			continue
		}
		if !c.check(v) {
			t.Errorf("%s{%s} = %v, want %s", c.name, c.labels, v, c.what)
		}
	}
	if _, ok := got["aegis_backup_last_success_timestamp_seconds"]["policy=bad"]; ok {
		t.Error("the failing policy, which never succeeded, has a last success time")
	}
	if v := got["aegis_agent_info"]; len(v) != 1 {
		t.Errorf("aegis_agent_info: %v", v)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("agent exit: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not stop")
	}
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
func positive(v float64) bool            { return v > 0 }
func nonNegative(v float64) bool         { return v >= 0 }
func between(a, b time.Time) func(float64) bool {
	return func(v float64) bool {
		return v >= float64(a.Unix())-1 && v <= float64(b.Unix())+1
	}
}
func after(t time.Time) func(float64) bool {
	return func(v float64) bool { return v > float64(t.Unix()) }
}

func TestMetricsTextfileForOnce(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	obsPolicies(e, "", "")
	prom := filepath.Join(e.root, "textfile", "aegis.prom")
	os.MkdirAll(filepath.Dir(prom), 0o755)
	e.run("--once", "--metrics-textfile", prom).mustCode(t, 1)
	f, err := os.Open(prom)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := samples(t, f)
	if got["aegis_backup_runs_total"]["policy=good,result=Succeeded"] != 1 || got["aegis_backup_runs_total"]["policy=bad,result=Failed"] != 1 {
		t.Errorf("runs: %v", got["aegis_backup_runs_total"])
	}
	if got["aegis_destination_snapshots"]["destination=disk,policy=good,source=files"] != 1 {
		t.Errorf("snapshots: %v", got["aegis_destination_snapshots"])
	}
	for name := range got {
		if !strings.HasPrefix(name, "aegis_") {
			t.Errorf("the textfile holds %s, which node_exporter exports itself", name)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(prom))
	if len(entries) != 1 {
		t.Errorf("the textfile directory holds %d files (temporary ones left?)", len(entries))
	}
}

// hookServer receives webhooks and pings; it answers 503 to the first
// request to /hook, to exercise the retries.
type hookServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []hookRequest
	seen map[string]bool
}

type hookRequest struct {
	path    string
	body    []byte
	headers http.Header
}

func newHookServer(t *testing.T) *hookServer {
	h := &hookServer{seen: map[string]bool{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.reqs = append(h.reqs, hookRequest{path: r.URL.Path, body: body, headers: r.Header.Clone()})
		if r.URL.Path == "/hook" && !h.seen["/hook"] {
			h.seen["/hook"] = true
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) requests() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.reqs...)
}

func (h *hookServer) paths() string {
	var p []string
	for _, r := range h.requests() {
		p = append(p, r.path)
	}
	return strings.Join(p, " ")
}

func writeSecret(t *testing.T, path, content string) string {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o700)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestNotificationsWithoutAStorm(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	srv := newHookServer(t)
	key := writeSecret(t, filepath.Join(e.root, "secrets", "hook.key"), "hmac-key-for-the-test\n")
	notify := fmt.Sprintf("  notify:\n    ping: %s/ping/abc\n    webhooks:\n      - url: %s/hook\n        secretFile: %s\n", srv.URL, srv.URL, key)
	obsPolicies(e, "", notify)

	// Three failed runs in a row.
	for range 3 {
		e.run("run", "bad").mustCode(t, 1)
	}
	want := "/ping/abc/start /ping/abc/fail /hook /hook /ping/abc/start /ping/abc/fail /ping/abc/start /ping/abc/fail"
	if got := srv.paths(); got != want {
		t.Fatalf("requests after three failures:\n got %s\nwant %s\n(one webhook, retried once after a 503; pings every run)", got, want)
	}
	reqs := srv.requests()
	hook := reqs[3]
	if got, want := hook.headers.Get("X-Aegis-Signature"), observe.Sign([]byte("hmac-key-for-the-test"), hook.body); got != want {
		t.Errorf("signature %q, want %q", got, want)
	}
	if reqs[2].headers.Get("X-Aegis-Delivery") != hook.headers.Get("X-Aegis-Delivery") {
		t.Error("a retry has another delivery ID")
	}
	var body observe.WebhookBody
	if err := json.Unmarshal(hook.body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Event != observe.EventFailure || body.Policy != "bad" || body.Result != "Failed" || body.ConsecutiveFailures != 1 ||
		len(body.Reasons) != 1 || body.Reasons[0] != observe.FailureDestinationUnreachable ||
		!strings.Contains(body.Message, "destination broken is not usable") || body.LogFile == "" || body.Text == "" {
		t.Errorf("webhook body %+v", body)
	}
	if !strings.Contains(string(reqs[1].body), "Failed") {
		t.Errorf("the fail ping says nothing: %q", reqs[1].body)
	}

	// Fixed: one recovery, and a success ping.
	e.write("bad.yaml", destination("broken", "@ROOT@/fixed")+"---\n"+smallPolicy("bad", "broken")+notify)
	e.run("run", "bad").mustCode(t, 0)
	reqs = srv.requests()[8:]
	var paths []string
	for _, r := range reqs {
		paths = append(paths, r.path)
	}
	if got := strings.Join(paths, " "); got != "/ping/abc/start /ping/abc /hook" {
		t.Fatalf("requests after the fix: %s", got)
	}
	json.Unmarshal(reqs[2].body, &body)
	if body.Event != observe.EventRecovery || body.Result != "Succeeded" {
		t.Errorf("recovery %+v", body)
	}
	// A success after a success is quiet (onSuccess is not set).
	e.run("run", "bad").mustCode(t, 0)
	if got := srv.paths(); strings.Count(got, "/hook") != 3 {
		t.Errorf("a webhook for a plain success: %s", got)
	}
}

func TestNotificationFailureNeverFailsTheBackup(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(400) }))
	defer srv.Close()
	notify := "  notify:\n    onSuccess: true\n    ping: " + srv.URL + "/ping/TOKEN1\n    webhooks: [{url: " + srv.URL + "/hooks/TOKEN2}]\n"
	e.write("good.yaml", destination("disk", "@ROOT@/backups")+"---\n"+smallPolicy("good", "disk")+notify)
	r := e.run("run", "good", "--log-format", "json")
	r.mustCode(t, 0)
	if !strings.Contains(r.stderr, "notification failed (the backup is not affected)") || !strings.Contains(r.stderr, "400 Bad Request") {
		t.Errorf("the failed notification is not reported:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "TOKEN") {
		t.Errorf("the log shows the URLs' tokens:\n%s", r.stderr)
	}
}

// auditLines reads every audit line of the log directory, rotated copies
// first.
func auditLines(t *testing.T, dir string) []observe.AuditEvent {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "audit.*.jsonl"))
	sort.Strings(files)
	files = append(files, filepath.Join(dir, "audit.jsonl"))
	var out []observe.AuditEvent
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var ev observe.AuditEvent
			dec := json.NewDecoder(strings.NewReader(sc.Text()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&ev); err != nil {
				t.Fatalf("audit line %q: %v", sc.Text(), err)
			}
			out = append(out, ev)
		}
		fh.Close()
	}
	return out
}

func TestAuditTrail(t *testing.T) {
	e := newEnv(t) // keys generate: the first line
	smallTree(t, e)
	kf := writeSecret(t, filepath.Join(e.root, "keys", "openssl.key"), strings.Repeat("ab", 32)+"\n")
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+`apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: p
spec:
  schedule: "@daily"
  sources:
    - name: files
      files:
        paths: ["@ROOT@/src"]
  destinations: [disk]
  encryption:
    openssl: {keyFile: `+kf+`}
`)
	start := len(auditLines(t, e.logs))
	e.run("--once").mustCode(t, 0)
	as := func(user string, args ...string) result {
		cmd := e.command(args...)
		cmd.Env = append(cmd.Env, "SUDO_USER="+user)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if err != nil {
			code = err.(interface{ ExitCode() int }).ExitCode()
		}
		return result{args: args, code: code, stdout: out.String(), stderr: errb.String()}
	}
	as("alice", "run", "p").mustCode(t, 0)
	as("alice", "restore", "p", "--target", filepath.Join(e.root, "restore")).mustCode(t, 0)
	as("bob", "keys", "rotate", "p").mustCode(t, 0)
	as("bob", "keys", "generate", "--kind", "openssl", "--out", filepath.Join(e.root, "keys", "new.key")).mustCode(t, 0)
	body, _ := os.ReadFile(filepath.Join(e.config, "p.yaml"))
	os.WriteFile(filepath.Join(e.config, "p.yaml"), append(body, "  retention: {keepLast: 1}\n"...), 0o644)
	as("carol", "prune", "p").mustCode(t, 0)
	e.write("broken.yaml", "apiVersion: aegis.io/v1\nkind: BackupPolicy\nmetadata: {name: broken}\nspec: {schedule: nope}\n")
	e.run("--once").mustCode(t, 2)
	e.run("--once").mustCode(t, 2) // the same rejection is not audited twice

	lines := auditLines(t, e.logs)[start:]
	var got []string
	for _, ev := range lines {
		got = append(got, fmt.Sprintf("%s %s %s %s", ev.Actor, ev.Action, ev.Object, ev.Outcome))
		if ev.Host == "" || ev.Time.IsZero() || ev.PID == 0 {
			t.Errorf("line without host, time or pid: %+v", ev)
		}
	}
	want := []string{
		"agent config.accepted BackupPolicy/p success",
		"agent config.accepted Destination/disk success",
		"agent backup.published BackupPolicy/p success",
		"alice backup.published BackupPolicy/p success",
		"alice restore.run Snapshot/%HOST%/p/%SNAP% success",
		"bob key.rotated BackupPolicy/p success",
		"bob key.generated Key/%KEY% success",
		"carol snapshot.deleted Snapshot/%HOST%/p/files/%OLD% success",
		"agent config.rejected BackupPolicy/broken failure",
		"agent config.accepted BackupPolicy/p success",
	}
	host, _ := os.Hostname()
	norm := regexp.MustCompile(`\d{8}T\d{6}Z-[0-9a-f]{6}`)
	keyRE := regexp.MustCompile(`Key/\S+`)
	var normed []string
	for _, g := range got {
		g = strings.ReplaceAll(g, host, "%HOST%")
		g = keyRE.ReplaceAllString(g, "Key/%KEY%")
		g = norm.ReplaceAllStringFunc(g, func(string) string { return "%ID%" })
		normed = append(normed, g)
	}
	for i := range want {
		want[i] = strings.NewReplacer("%SNAP%", "%ID%", "%OLD%", "%ID%").Replace(want[i])
	}
	if strings.Join(normed, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	byAction := map[string]observe.AuditEvent{}
	for _, ev := range lines {
		byAction[ev.Action] = ev
	}
	if ev := byAction["backup.published"]; ev.Command != "run" || ev.Snapshot == "" || ev.Bytes == 0 || ev.Policy != "p" {
		t.Errorf("backup line %+v", ev)
	}
	if ev := byAction["restore.run"]; ev.Command != "restore" || ev.File != filepath.Join(e.root, "restore") || ev.Destination != "disk" || strings.Join(ev.Sources, ",") != "files" {
		t.Errorf("restore line %+v", ev)
	}
	if ev := byAction["key.rotated"]; ev.KeyID == "" || ev.File != kf {
		t.Errorf("rotation line %+v", ev)
	}
	if ev := byAction["snapshot.deleted"]; ev.Destination != "disk" || ev.Snapshot == "" || ev.Command != "prune" {
		t.Errorf("deletion line %+v", ev)
	}
	if ev := byAction["config.rejected"]; !strings.Contains(ev.Message, "spec.schedule") || !strings.HasSuffix(ev.File, "broken.yaml") {
		t.Errorf("rejection line %+v", ev)
	}
}

// TestNoSecretInAnyLog runs every command against a configuration that uses
// every kind of secret the manifests can name, then looks for the secrets
// in everything Aegis wrote or printed.
func TestNoSecretInAnyLog(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	srv := newHookServer(t)
	mark := func(kind string) string {
		b := make([]byte, 6)
		rand.Read(b)
		return "SECRET" + kind + hex.EncodeToString(b)
	}
	secrets := map[string]string{}
	file := func(kind, content string) string {
		secrets[kind] = content
		return writeSecret(t, filepath.Join(e.root, "secrets", kind), content)
	}
	opensslPass := strings.Repeat("0f", 24) + hex.EncodeToString([]byte(mark("O")[:4]))
	kf := file("openssl", opensslPass+"\n")
	hookKey := file("webhook", mark("W")+"\n")
	s3 := mark("S")
	s3File := writeSecret(t, filepath.Join(e.root, "secrets", "s3"), "[default]\naws_access_key_id = AKIATEST\naws_secret_access_key = "+s3+"\n")
	secrets["s3"] = s3
	pg := file("pg", mark("P")+"\n")
	my := file("mysql", mark("M")+"\n")
	sftpPw := file("sftppw", mark("F")+"\n")
	sftpKey := file("sftpkey", "-----BEGIN OPENSSH PRIVATE KEY-----\n"+mark("K")+"\n-----END OPENSSH PRIVATE KEY-----\n")
	ftpPw := file("ftppw", mark("T")+"\n")
	// Servers that refuse the credentials at once (a refusal is final, so
	// the drivers do not retry): the secrets go over the wire, and what the
	// servers got proves they were used.
	var s3Signed atomic.Bool
	s3srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Authorization"), "Credential=AKIATEST/") {
			s3Signed.Store(true) // signed with the secret key
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>`)
	}))
	defer s3srv.Close()
	sshAddr, sshKnown, sshGot := refusingSSHServer(t)
	ftpAddr, ftpGot := refusingFTPServer(t)
	known := writeSecret(t, filepath.Join(e.root, "secrets", "known_hosts"), sshKnown)
	sshHost, sshPort, _ := net.SplitHostPort(sshAddr)
	ftpHost, ftpPort, _ := net.SplitHostPort(ftpAddr)
	pingToken, hookToken := mark("PING"), mark("HOOK")
	secrets["ping"], secrets["hook"] = pingToken, hookToken
	// The age identity is a secret too.
	ident, _ := os.ReadFile(e.identity)
	for _, l := range strings.Split(string(ident), "\n") {
		if strings.HasPrefix(l, "AGE-SECRET-KEY-") {
			secrets["age"] = l
		}
	}

	e.write("all.yaml", destination("disk", "@ROOT@/backups")+`---
apiVersion: aegis.io/v1
kind: Destination
metadata: {name: s3}
spec:
  s3: {provider: minio, endpoint: "`+s3srv.URL+`", bucket: aegis-test, credentialsFile: `+s3File+`}
---
apiVersion: aegis.io/v1
kind: Destination
metadata: {name: sftp}
spec:
  sftp: {host: `+sshHost+`, port: `+sshPort+`, user: u, path: /x, passwordFile: `+sftpPw+`, knownHostsFile: `+known+`}
---
apiVersion: aegis.io/v1
kind: Destination
metadata: {name: sftpkey}
spec:
  sftp: {host: `+sshHost+`, port: `+sshPort+`, user: u, path: /x, privateKeyFile: `+sftpKey+`, knownHostsFile: `+known+`}
---
apiVersion: aegis.io/v1
kind: Destination
metadata: {name: ftp}
spec:
  ftp: {host: `+ftpHost+`, port: `+ftpPort+`, user: u, path: /x, passwordFile: `+ftpPw+`}
---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: secretive}
spec:
  schedule: "@daily"
  sources:
    - name: files
      files: {paths: ["@ROOT@/src"]}
    - name: pg
      postgres: {host: 127.0.0.1, port: 1, user: u, passwordFile: `+pg+`}
    - name: my
      mysql: {host: 127.0.0.1, port: 1, user: u, passwordFile: `+my+`}
  destinations: [disk, s3, sftp, sftpkey, ftp]
  encryption:
    openssl: {keyFile: `+kf+`}
  notify:
    onSuccess: true
    ping: `+srv.URL+`/ping/`+pingToken+`
    webhooks: [{url: "`+srv.URL+`/hook/`+hookToken+`", secretFile: `+hookKey+`}]
---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata: {name: aged}
spec:
  schedule: "@daily"
  sources: [{name: files, files: {paths: ["@ROOT@/src"]}}]
  destinations: [disk]
  encryption: {age: {recipients: ["@RECIPIENT@"]}}
`)
	var printed strings.Builder
	runAll := func(code int, args ...string) {
		t0 := time.Now()
		r := e.run(args...)
		t.Logf("%v: exit %d in %s", args, r.code, time.Since(t0).Round(time.Millisecond))
		printed.WriteString(r.stdout + r.stderr)
		if code >= 0 {
			r.mustCode(t, code)
		}
	}
	prom := filepath.Join(e.root, "aegis.prom")
	runAll(1, "--once", "--log-level", "debug", "--metrics-textfile", prom)
	runAll(1, "run", "secretive", "--log-level", "debug")
	runAll(0, "restore", "aged", "--target", filepath.Join(e.root, "r1"), "--identity", e.identity)
	runAll(0, "restore", "secretive", "--source", "files", "--from", "disk", "--target", filepath.Join(e.root, "r2"))
	runAll(-1, "verify", "--identity", e.identity, "--log-level", "debug")
	runAll(-1, "status")
	runAll(-1, "status", "--json")
	runAll(-1, "snapshots", "--json")
	runAll(0, "keys", "rotate", "secretive")
	runAll(-1, "keys", "list")
	runAll(-1, "prune", "--dry-run", "--json")
	runAll(-1, "validate")

	// Everything Aegis wrote outside the destinations, and what the
	// webhook receiver got (the body is sent, the secrets are not in it).
	var haystack strings.Builder
	haystack.WriteString(printed.String())
	var searched []string
	for _, dir := range []string{e.logs, e.config, filepath.Dir(prom)} {
		filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() || strings.HasPrefix(p, filepath.Join(e.root, "secrets")) || strings.HasPrefix(p, filepath.Join(e.root, "keys")) ||
				strings.HasPrefix(p, filepath.Join(e.root, "src")) || strings.HasPrefix(p, filepath.Join(e.root, "r")) || strings.HasPrefix(p, filepath.Join(e.root, "backups")) {
				return nil
			}
			if p == filepath.Join(e.config, "all.yaml") {
				return nil // the manifest names the URLs
			}
			b, _ := os.ReadFile(p)
			haystack.Write(b)
			searched = append(searched, strings.TrimPrefix(p, e.root+"/"))
			return nil
		})
	}
	for _, r := range srv.requests() {
		haystack.Write(r.body)
	}
	if len(srv.requests()) == 0 {
		t.Error("no notification was sent")
	}
	if !s3Signed.Load() {
		t.Error("the S3 server never got a signed request: the test proves nothing of the S3 secret")
	}
	if got := sshGot(); !strings.Contains(got, strings.TrimSpace(secrets["sftppw"])) {
		t.Errorf("the SSH server never got the password (got %q): the test proves nothing of it", got)
	}
	if got := ftpGot(); !strings.Contains(got, strings.TrimSpace(secrets["ftppw"])) {
		t.Errorf("the FTP server never got the password (got %q): the test proves nothing of it", got)
	}
	all := haystack.String()
	for kind, s := range secrets {
		for _, needle := range []string{strings.TrimSpace(s), strings.TrimSpace(strings.Split(strings.TrimSpace(s), "\n")[0])} {
			if len(needle) >= 8 && strings.Contains(all, needle) {
				t.Errorf("the %s secret appears in what Aegis wrote", kind)
			}
		}
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(l, "SECRET") && strings.Contains(all, l) {
				t.Errorf("the %s secret appears in what Aegis wrote", kind)
			}
		}
	}
	if !strings.Contains(all, "backup.published") || !strings.Contains(all, "progress") && !strings.Contains(all, "run result") {
		t.Errorf("the logs searched look empty: %v", searched)
	}
	t.Logf("searched %d files and %d bytes for %d secrets", len(searched), haystack.Len(), len(secrets))
}

func TestLogDirectoryStaysWithinItsBound(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+smallPolicy("p", "disk"))
	limits := []string{"--log-max-size", "8KiB", "--log-max-total", "48KiB", "--log-max-files", "2", "--log-level", "debug"}
	const runs = 30
	var maxTotal int64
	for i := range runs {
		e.run(append([]string{"run", "p"}, limits...)...).mustCode(t, 0)
		total := dirSize(t, e.logs)
		maxTotal = max(maxTotal, total)
		if total > 48<<10 {
			t.Fatalf("after run %d the log directory holds %d bytes, over its bound of %d", i+1, total, 48<<10)
		}
	}
	files, _ := os.ReadDir(e.logs)
	var runLogs, rotated int
	for _, f := range files {
		switch {
		case strings.HasPrefix(f.Name(), "backup-"):
			runLogs++
		case strings.HasPrefix(f.Name(), "agent.") && f.Name() != "agent.log":
			rotated++
		}
	}
	if runLogs == 0 || runLogs == runs || rotated > 2 {
		t.Errorf("%d run logs and %d rotated agent logs left of %d runs", runLogs, rotated, runs)
	}
	if fi, err := os.Stat(filepath.Join(e.logs, "agent.log")); err != nil {
		t.Error(err)
	} else if fi.Size() > 8<<10 {
		t.Errorf("agent.log holds %d bytes: it was not rotated at 8 KiB", fi.Size())
	}
	// No audit line was lost: the audit copies go last.
	n := 0
	for _, ev := range auditLines(t, e.logs) {
		if ev.Action == observe.AuditBackupPublished {
			n++
		}
	}
	if n != runs {
		t.Errorf("%d backup.published lines, want %d", n, runs)
	}
	t.Logf("%d runs: the log directory peaked at %d bytes of 49152; %d run logs and %d rotated agent logs kept", runs, maxTotal, runLogs, rotated)

	// A bound that cannot hold the live files is refused.
	e.run("status", "--log-max-size", "10MiB", "--log-max-total", "20MiB").mustCode(t, 2)
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	entries, _ := os.ReadDir(dir)
	for _, en := range entries {
		if fi, err := en.Info(); err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
	}
	return total
}

func TestStatusCommand(t *testing.T) {
	e := newEnv(t)
	smallTree(t, e)
	obsPolicies(e, "", "")
	e.run("--once").mustCode(t, 1)

	r := e.run("status")
	r.mustCode(t, 1) // bad is failing
	lines := strings.Split(r.stdout, "\n")
	if !strings.HasPrefix(lines[0], "POLICY") || !strings.Contains(lines[0], "LAST SUCCESS") || !strings.Contains(lines[0], "DESTINATIONS") {
		t.Errorf("header %q", lines[0])
	}
	if !regexp.MustCompile(`(?m)^good\s+OK\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+\d+s\s+in \S+\s+Succeeded \d+s ago\s+\S+ \S+\s+1/1$`).MatchString(r.stdout) {
		t.Errorf("the good policy's row:\n%s", r.stdout)
	}
	if !regexp.MustCompile(`(?m)^bad\s+FAILING\s+never\s+-\s+in \S+\s+Failed \d+s ago\s+-\s+0/1 \(broken not ok\)$`).MatchString(r.stdout) {
		t.Errorf("the bad policy's row:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "bad: source files: no destination is usable") || !strings.Contains(r.stdout, "log: "+e.logs+"/backup-bad-") {
		t.Errorf("no explanation of the failure:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "\x1b[") {
		t.Error("colours in a pipe")
	}

	var rows []map[string]any
	j := e.run("status", "--json")
	j.mustCode(t, 1)
	if err := json.Unmarshal([]byte(j.stdout), &rows); err != nil || len(rows) != 2 {
		t.Fatalf("status --json: %v\n%s", err, j.stdout)
	}
	byName := map[string]map[string]any{}
	for _, r := range rows {
		byName[r["policy"].(string)] = r
	}
	if g := byName["good"]; g["state"] != "OK" || g["overdue"] != false || g["sizeBytes"].(float64) <= 0 || g["lastResult"] != "Succeeded" {
		t.Errorf("good: %v", g)
	}
	if b := byName["bad"]; b["state"] != "FAILING" || b["ready"] != "False" || b["destinations"].(map[string]any)["healthy"].(float64) != 0 {
		t.Errorf("bad: %v", b)
	}

	// Without the failing policy: 0. Three days later, with no run since
	// (the agent stopped), the daily policy is overdue: 1.
	os.Remove(filepath.Join(e.config, "bad.yaml"))
	e.run("status").mustCode(t, 0)
	later := e.command("status")
	later.Env = append(later.Env, "AEGIS_TEST_NOW="+time.Now().Add(72*time.Hour).UTC().Format(time.RFC3339))
	out, err := later.Output()
	if code := later.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), "OVERDUE") || !strings.Contains(string(out), "more than twice the schedule's interval") {
		t.Errorf("status three days later: exit %d (%v)\n%s", code, err, out)
	}

	// An invalid manifest: 2.
	e.write("broken.yaml", "apiVersion: aegis.io/v1\nkind: BackupPolicy\nmetadata: {name: broken}\nspec: {schedule: nope}\n")
	inv := e.run("status")
	inv.mustCode(t, 2)
	if !strings.Contains(inv.stdout, "INVALID") {
		t.Errorf("invalid policy not shown:\n%s", inv.stdout)
	}
}

// TestProgressOnATerminal runs `run` and `restore` on a pseudo-terminal:
// bars appear there; through a pipe (the other tests) nothing of them does.
func TestProgressOnATerminal(t *testing.T) {
	e := newEnv(t)
	makeTree(t, filepath.Join(e.root, "src"), 8<<20)
	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+smallPolicy("p", "disk"))
	onTTY := func(args ...string) string {
		cmd := e.command(args...)
		f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var out strings.Builder
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 4096)
			for {
				n, err := f.Read(buf)
				chunk := string(buf[:n])
				out.WriteString(chunk)
				// Answer the terminal queries of the UI libraries linked in
				// (background colour, cursor position), as a terminal does.
				if strings.Contains(chunk, "\x1b]11;?") {
					f.WriteString("\x1b]11;rgb:0000/0000/0000\x1b\\")
				}
				if strings.Contains(chunk, "\x1b[6n") {
					f.WriteString("\x1b[1;1R")
				}
				if err != nil {
					return
				}
			}
		}()
		if err := cmd.Wait(); err != nil {
			t.Errorf("%v: %v", args, err)
		}
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		return out.String()
	}
	run := onTTY("run", "p")
	for _, want := range []string{"✓ source files", "✓ → disk", "policy p: Succeeded"} {
		if !strings.Contains(run, want) {
			t.Errorf("run on a terminal lacks %q:\n%q", want, run)
		}
	}
	restore := onTTY("restore", "p", "--target", filepath.Join(e.root, "restored"), "--identity", e.identity)
	if !strings.Contains(restore, "✓ restore files ← disk") || !strings.Contains(restore, "restored snapshot") {
		t.Errorf("restore on a terminal:\n%q", restore)
	}
	piped := e.run("run", "p")
	piped.mustCode(t, 0)
	if strings.Contains(piped.stderr, "✓") || strings.Contains(piped.stderr, "\x1b[") {
		t.Errorf("progress drawn into a pipe:\n%q", piped.stderr)
	}
}

// refusingSSHServer accepts SSH connections and refuses every password
// (keeping the last one it was offered). It returns its address and a
// known_hosts line for it.
func refusingSSHServer(t *testing.T) (addr, knownHosts string, got func() string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var last string
	cfg := &ssh.ServerConfig{
		PasswordCallback: func(_ ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			mu.Lock()
			last = string(pw)
			mu.Unlock()
			return nil, errors.New("refused")
		},
	}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				ssh.NewServerConn(c, cfg)
			}()
		}
	}()
	addr = ln.Addr().String()
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, signer.PublicKey())
	return addr, line + "\n", func() string { mu.Lock(); defer mu.Unlock(); return last }
}

// refusingFTPServer speaks enough FTP to refuse every login (530), keeping
// the passwords it was offered.
func refusingFTPServer(t *testing.T) (addr string, got func() string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var pws []string
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				io.WriteString(c, "220 aegis test\r\n")
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					cmd, arg, _ := strings.Cut(sc.Text(), " ")
					switch strings.ToUpper(cmd) {
					case "FEAT":
						io.WriteString(c, "211-Features:\r\n UTF8\r\n211 End\r\n")
					case "USER":
						io.WriteString(c, "331 Password required\r\n")
					case "PASS":
						mu.Lock()
						pws = append(pws, arg)
						mu.Unlock()
						io.WriteString(c, "530 Login incorrect\r\n")
					case "QUIT":
						io.WriteString(c, "221 Bye\r\n")
						return
					default:
						io.WriteString(c, "200 OK\r\n")
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), func() string { mu.Lock(); defer mu.Unlock(); return strings.Join(pws, "\n") }
}
