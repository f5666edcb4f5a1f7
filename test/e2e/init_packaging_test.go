package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// requireTool finds a command-line tool the packaging tests check against.
// hack/deps-packaging.sh installs them (make deps); under CI=true a missing
// tool fails the test, elsewhere it is skipped with the command to run.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed: the CI run must install it (hack/deps-packaging.sh)", name)
	}
	t.Skipf("%s is not installed; install it with: ./hack/deps-packaging.sh", name)
	return ""
}

// TestSystemdUnit: the shipped unit passes systemd-analyze verify (with the
// man page it names, generated from the commands), and its sandbox is
// measured with systemd-analyze security.
func TestSystemdUnit(t *testing.T) {
	analyze := requireTool(t, "systemd-analyze")
	dir := t.TempDir()
	body := readFile(t, filepath.Join("..", "..", "manifests", "systemd", "aegis-agent.service"))
	if !strings.Contains(body, "ExecStart=/usr/local/bin/aegis-agent ") {
		t.Fatalf("the unit does not start /usr/local/bin/aegis-agent:\n%s", body)
	}
	// verify checks that the binary exists: point it at the one built.
	unit := filepath.Join(dir, "aegis-agent.service")
	os.WriteFile(unit, []byte(strings.ReplaceAll(body, "/usr/local/bin/aegis-agent", agentBin)), 0o644)

	man := filepath.Join(dir, "man")
	if out, err := exec.Command(agentBin, "man", "--dir", filepath.Join(man, "man1")).CombinedOutput(); err != nil {
		t.Fatalf("aegis-agent man: %v\n%s", err, out)
	}
	for _, page := range []string{"aegis-agent.1", "aegis-agent-init.1", "aegis-agent-validate.1", "aegis-agent-completion-bash.1"} {
		if _, err := os.Stat(filepath.Join(man, "man1", page)); err != nil {
			t.Errorf("man page %s: %v", page, err)
		}
	}
	verify := exec.Command(analyze, "verify", unit)
	verify.Env = append(os.Environ(), "MANPATH="+man)
	if out, err := verify.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	out, err := exec.Command(analyze, "security", "--offline=true", "--no-pager", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for aegis-agent.service: ([0-9.]+) (\S+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	score, _ := strconv.ParseFloat(m[1], 64)
	t.Logf("systemd-analyze security: exposure %.1f %s (0 is best, 10 worst)", score, m[2])
	// A root agent that must read every file cannot reach the lowest
	// levels; this bounds what a change to the unit may give up.
	if score > 3.0 {
		t.Errorf("exposure level %.1f, want at most 3.0:\n%s", score, out)
	}
}

// TestCompletion: the shells' completion scripts are generated and know
// the commands.
func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out, err := exec.Command(agentBin, "completion", shell).Output()
		if err != nil {
			t.Fatalf("completion %s: %v", shell, err)
		}
		if !strings.Contains(string(out), "aegis-agent") || len(out) < 1000 {
			t.Errorf("completion %s: %d bytes:\n%.300s", shell, len(out), out)
		}
	}
	// Cobra's completion protocol: what the scripts ask the binary.
	out, err := exec.Command(agentBin, "__complete", "").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"init", "validate", "restore", "snapshots"} {
		if !strings.Contains(string(out), cmd) {
			t.Errorf("completing the command name does not offer %s:\n%s", cmd, out)
		}
	}
	// Every command's --help has an example.
	for _, args := range [][]string{{}, {"init"}, {"validate"}, {"run"}, {"snapshots"}, {"restore"}, {"verify"}, {"status"}, {"prune"}, {"keys"}, {"keys", "generate"}, {"completion"}, {"completion", "bash"}} {
		out, err := exec.Command(agentBin, append(args, "--help")...).Output()
		if err != nil {
			t.Fatalf("%v --help: %v", args, err)
		}
		if !strings.Contains(string(out), "Examples:") {
			t.Errorf("aegis-agent %s --help has no example", strings.Join(args, " "))
		}
	}
}

// TestAnsibleRole: the example playbook passes ansible-playbook
// --syntax-check and ansible-lint, and runs for real against this host
// (in temporary directories, without the service): the templated
// manifests validate, the secrets are 0600, a second run changes nothing,
// a change of manifests only restarts nothing, and a manifest that does
// not validate fails the run and never replaces the live one.
func TestAnsibleRole(t *testing.T) {
	dir, _ := filepath.Abs(filepath.Join("..", "..", "manifests", "ansible"))
	// Whatever is installed, every file must at least be YAML.
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || !(strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")) {
			return err
		}
		var v any
		if err := yaml.Unmarshal([]byte(readFile(t, p)), &v); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		return nil
	})
	playbook := requireTool(t, "ansible-playbook")
	lint := requireTool(t, "ansible-lint")

	ansible := func(bin string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0", "ANSIBLE_RETRY_FILES_ENABLED=0", "NO_COLOR=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := ansible(playbook, "--syntax-check", "-i", "inventory.example.yml", "site.yml"); err != nil {
		t.Fatalf("ansible-playbook --syntax-check: %v\n%s", err, out)
	}
	if out, err := ansible(lint, "--offline", "--nocolor"); err != nil {
		t.Errorf("ansible-lint: %v\n%s", err, out)
	}

	root := t.TempDir()
	inventory := filepath.Join(root, "inventory.yml")
	os.WriteFile(inventory, []byte("backup_hosts:\n  hosts:\n    localhost:\n      ansible_connection: local\n      ansible_python_interpreter: /usr/bin/python3\n"), 0o644)
	etc := filepath.Join(root, "etc", "aegis")
	vars := map[string]any{
		"ansible_become":       false,
		"aegis_binary_src":     agentBin,
		"aegis_bin_dir":        filepath.Join(root, "bin"),
		"aegis_etc_dir":        etc,
		"aegis_state_dir":      filepath.Join(root, "state"),
		"aegis_log_dir":        filepath.Join(root, "log"),
		"aegis_manage_service": false,
	}
	run := func(extra map[string]any) (string, error) {
		all := map[string]any{}
		for k, v := range vars {
			all[k] = v
		}
		for k, v := range extra {
			all[k] = v
		}
		j, _ := json.Marshal(all)
		return ansible(playbook, "-i", inventory, "site.yml", "-e", string(j))
	}
	recap := regexp.MustCompile(`localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=0\s+failed=(\d+)`)
	changed := func(out string) int {
		m := recap.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no play recap in:\n%s", out)
		}
		n, _ := strconv.Atoi(m[2])
		return n
	}

	out, err := run(nil)
	if err != nil {
		t.Fatalf("ansible-playbook site.yml: %v\n%s", err, out)
	}
	manifest := filepath.Join(etc, "policies.d", "ansible.yaml")
	r := (&env{t: t}).runIn(etc, "validate", filepath.Join(etc, "policies.d"))
	r.mustCode(t, 0)
	body := readFile(t, manifest)
	for _, want := range []string{"kind: Destination", "name: offsite", "kind: BackupPolicy", "name: web", "age1nftmjkjz99yl4xxjrt74epwytwfupuc4ppfcxfwa2sp74l5wr92ssfus8k",
		"credentialsFile: " + filepath.Join(etc, "secrets", "offsite.s3-credentials")} {
		if !strings.Contains(body, want) {
			t.Errorf("templated manifests lack %q:\n%s", want, body)
		}
	}
	for name, want := range map[string]string{
		"offsite.s3-credentials": "[default]\naws_access_key_id = 0041234567890ab0000000001\naws_secret_access_key = K004-example-not-a-real-key\n",
		"web-db.password":        "example-password\n",
	} {
		p := filepath.Join(etc, "secrets", name)
		assertMode(t, p, 0o600)
		if got := readFile(t, p); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if strings.Contains(out, "example-password") || strings.Contains(out, "K004-example") {
		t.Errorf("the play's output shows a secret:\n%s", out)
	}

	// Idempotent.
	out, err = run(nil)
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if n := changed(out); n != 0 {
		t.Errorf("second run changed %d things, want 0:\n%s", n, out)
	}

	// Only the manifests change: nothing is restarted.
	const other = "age1w9wn42az2nr4t2j29zq5pw88tg0fra0nw2m2a6trpw0psu3hqgxqs6qp96"
	out, err = run(map[string]any{"aegis_age_recipient": other})
	if err != nil {
		t.Fatalf("run with a new recipient: %v\n%s", err, out)
	}
	if n := changed(out); n != 1 || strings.Contains(out, "RUNNING HANDLER") {
		t.Errorf("a change of manifests only: %d changes (want 1) and handlers run:\n%s", n, out)
	}
	if !strings.Contains(readFile(t, manifest), other) {
		t.Errorf("the new recipient did not reach the manifests")
	}

	// A bad commit fails on the host and the live file stays as it was.
	before := readFile(t, manifest)
	out, err = run(map[string]any{"aegis_age_recipient": "AGE-SECRET-KEY-1NOTAPUBLICKEY"})
	if err == nil {
		t.Fatalf("a manifest that does not validate went through:\n%s", out)
	}
	if !strings.Contains(out, "is an age secret key") {
		t.Errorf("the failed run does not say why:\n%s", out)
	}
	if readFile(t, manifest) != before {
		t.Errorf("the invalid manifests replaced the live ones")
	}
}

// runIn runs aegis-agent with dir as its configuration root.
func (e *env) runIn(dir string, args ...string) result {
	cmd := exec.Command(agentBin, append([]string{"--config-dir", filepath.Join(dir, "policies.d")}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return result{args: args, code: code, stdout: string(out)}
}
