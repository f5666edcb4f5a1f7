// Package dbtest finds, for the tests of the database drivers, the servers
// that hack/server-postgres.sh and hack/server-mariadb.sh start.
package dbtest

import (
	"strconv"
	"testing"

	"github.com/aegis-backup/aegis/test/testenv"
)

// Server is a database server of the test environment.
type Server struct {
	Host   string
	Port   int
	Socket string // the socket, or for PostgreSQL its directory
	User   string
	// PasswordFile holds the user's password (mode 0600).
	PasswordFile string
}

// Require returns the server what (such as "PostgreSQL server") that the
// variables prefix+HOST, PORT, USER, PASSWORD_FILE and prefix+socket
// describe (prefix "AEGIS_TEST_PG_", socket "SOCKET_DIR"). Without them
// the test skips, or fails under CI, as testenv.Require says.
func Require(t testing.TB, what, prefix, socket string) Server {
	t.Helper()
	env := testenv.Require(t, what, prefix+"HOST", prefix+"PORT", prefix+socket, prefix+"USER", prefix+"PASSWORD_FILE")
	port, err := strconv.Atoi(env[prefix+"PORT"])
	if err != nil {
		t.Fatalf("%sPORT: %v", prefix, err)
	}
	return Server{
		Host:         env[prefix+"HOST"],
		Port:         port,
		Socket:       env[prefix+socket],
		User:         env[prefix+"USER"],
		PasswordFile: env[prefix+"PASSWORD_FILE"],
	}
}
