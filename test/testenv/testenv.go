// Package testenv gives tests the real servers that hack/test-env.sh
// started (S3, SFTP, FTP, PostgreSQL, MariaDB, Docker), found through
// environment variables. Under CI=true a missing server fails the test;
// elsewhere the test is skipped with the command that starts the servers.
package testenv

import (
	"os"
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
