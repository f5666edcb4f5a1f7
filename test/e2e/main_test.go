// Package e2e drives the built aegis-agent binary the way a user does: temp
// config, state and log directories, real files, real tools.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

var agentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "aegis-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin = filepath.Join(dir, "aegis-agent")
	build := exec.Command("go", "build", "-o", agentBin, "github.com/aegis-backup/aegis/cmd/aegis-agent")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build aegis-agent:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one user's installation: its directories and key.
type env struct {
	t        *testing.T
	root     string
	config   string
	state    string
	logs     string
	identity string
	recip    string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	root := t.TempDir()
	e := &env{
		t:      t,
		root:   root,
		config: filepath.Join(root, "config"),
		state:  filepath.Join(root, "state"),
		logs:   filepath.Join(root, "logs"),
	}
	if err := os.MkdirAll(e.config, 0o755); err != nil {
		t.Fatal(err)
	}
	e.identity = filepath.Join(root, "keys", "test.key")
	res := e.run("keys", "generate", "--out", e.identity)
	res.mustCode(t, 0)
	body, err := os.ReadFile(e.identity)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if r, ok := strings.CutPrefix(line, "# public key: "); ok {
			e.recip = r
		}
	}
	if e.recip == "" {
		t.Fatalf("no public key in %s:\n%s", e.identity, body)
	}
	return e
}

type result struct {
	args   []string
	code   int
	stdout string
	stderr string
}

func (r result) mustCode(t *testing.T, want int) {
	t.Helper()
	if r.code != want {
		t.Fatalf("aegis-agent %s: exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, want, r.stdout, r.stderr)
	}
}

func (e *env) command(args ...string) *exec.Cmd {
	cmd := exec.Command(agentBin, args...)
	cmd.Env = append(os.Environ(),
		"AEGIS_CONFIG_DIR="+e.config,
		"AEGIS_STATE_DIR="+e.state,
		"AEGIS_LOG_DIR="+e.logs,
		"AEGIS_STATUS_DIR=",
		"AEGIS_KEYS_DIR="+filepath.Join(e.root, "keys"),
	)
	return cmd
}

func (e *env) run(args ...string) result {
	e.t.Helper()
	cmd := e.command(args...)
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

// write puts a manifest into the config directory, filling @RECIPIENT@.
func (e *env) write(name, body string) string {
	e.t.Helper()
	p := filepath.Join(e.config, name)
	body = strings.ReplaceAll(body, "@RECIPIENT@", e.recip)
	body = strings.ReplaceAll(body, "@ROOT@", e.root)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) status(manifest string) *v1.StatusFile {
	e.t.Helper()
	p := strings.TrimSuffix(filepath.Join(e.config, manifest), filepath.Ext(manifest)) + ".status.yaml"
	data, err := os.ReadFile(p)
	if err != nil {
		e.t.Fatalf("status sidecar: %v", err)
	}
	var sf v1.StatusFile
	if err := yaml.UnmarshalStrict(data, &sf); err != nil {
		e.t.Fatalf("status sidecar %s: %v\n%s", p, err, data)
	}
	return &sf
}

func entry(t *testing.T, sf *v1.StatusFile, kind, name string) v1.ObjectStatus {
	t.Helper()
	for _, it := range sf.Items {
		if it.Kind == kind && it.Name == name {
			return it.Status
		}
	}
	t.Fatalf("status has no %s/%s: %+v", kind, name, sf.Items)
	return v1.ObjectStatus{}
}

func condition(t *testing.T, st v1.ObjectStatus, typ string) v1.Condition {
	t.Helper()
	c := v1.FindCondition(st.Conditions, typ)
	if c == nil {
		t.Fatalf("no condition %s in %+v", typ, st.Conditions)
	}
	return *c
}

type snapshotJSON struct {
	Destination string              `json:"destination"`
	Manifest    v1.SnapshotManifest `json:"manifest"`
	Size        int64               `json:"size"`
}

func (e *env) snapshots(args ...string) []snapshotJSON {
	e.t.Helper()
	r := e.run(append([]string{"snapshots", "--json"}, args...)...)
	r.mustCode(e.t, 0)
	var out []snapshotJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		e.t.Fatalf("snapshots --json: %v\n%s", err, r.stdout)
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}
