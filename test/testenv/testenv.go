// Package testenv gives tests the real servers that hack/test-env.sh
// started (S3, SFTP, FTP, PostgreSQL, MariaDB, Docker), found through
// environment variables. Under CI=true a missing server fails the test;
// elsewhere the test is skipped with the command that starts the servers.
package testenv

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// StartCommand is how a developer starts every test server and runs the
// tests against them.
const StartCommand = "./hack/test-env.sh go test ./...   (or: make test)"

// Require returns the values of the environment variables, which the
// server scripts in hack/ export. When one is missing the test fails under
// CI=true and is skipped otherwise.
func Require(t testing.TB, what string, vars ...string) map[string]string {
	t.Helper()
	out := make(map[string]string, len(vars))
	for _, v := range vars {
		val, ok := os.LookupEnv(v)
		if !ok || val == "" {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not available: %s is not set; the CI run must start it (hack/test-env.sh)", what, v)
			}
			t.Skipf("%s is not available (%s is not set); start the test servers with: %s", what, v, StartCommand)
		}
		out[v] = val
	}
	return out
}

// ServerScript runs hack/server-KIND.sh CMD DIR (the scripts hack/test-env.sh
// runs), for tests that start, stop or kill servers of their own, and
// returns the variables the script exports.
func ServerScript(t testing.TB, kind, cmd, dir string) map[string]string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(self), "..", "..", "hack", "server-"+kind+".sh")
	c := exec.Command(script, cmd, dir)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		t.Fatalf("hack/server-%s.sh %s: %v\n%s", kind, cmd, err, errb.String())
	}
	env := map[string]string{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "="); ok {
			env[k] = strings.Trim(v, `"`)
		}
	}
	return env
}
