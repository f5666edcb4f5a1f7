package drill

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/test/testenv"
)

type myServer struct {
	t                  *testing.T
	host, user, socket string
	pwd                string
	port               int
}

func requireMySQL(t *testing.T) *myServer {
	t.Helper()
	env := testenv.Require(t, "MariaDB server", "AEGIS_TEST_MYSQL_HOST", "AEGIS_TEST_MYSQL_PORT", "AEGIS_TEST_MYSQL_SOCKET", "AEGIS_TEST_MYSQL_USER", "AEGIS_TEST_MYSQL_PASSWORD_FILE")
	port, _ := strconv.Atoi(env["AEGIS_TEST_MYSQL_PORT"])
	return &myServer{t: t, host: env["AEGIS_TEST_MYSQL_HOST"], port: port, socket: env["AEGIS_TEST_MYSQL_SOCKET"], user: env["AEGIS_TEST_MYSQL_USER"], pwd: env["AEGIS_TEST_MYSQL_PASSWORD_FILE"]}
}

func (s *myServer) sql(q string) string {
	s.t.Helper()
	pw, err := os.ReadFile(s.pwd)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command("mariadb", "--batch", "--skip-column-names", "--protocol=SOCKET", "--socket="+s.socket, "--user="+s.user, "--password="+strings.TrimSpace(string(pw)), "--execute="+q)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("mariadb: %v\n%s\n%s", err, q, out)
	}
	return strings.TrimSpace(string(out))
}

func TestMySQLDrill(t *testing.T) {
	s := requireMySQL(t)
	db := fmt.Sprintf("drillshop_%d", os.Getpid())
	s.sql("DROP DATABASE IF EXISTS " + db + "; CREATE DATABASE " + db)
	defer s.sql("DROP DATABASE IF EXISTS " + db)
	s.sql("USE " + db + "; CREATE TABLE " + db + ".orders (id INT PRIMARY KEY, note TEXT); " +
		"INSERT INTO " + db + ".orders SELECT seq, CONCAT('it''s (', seq, ')\\n),(') FROM seq_1_to_777; " +
		"CREATE TABLE " + db + ".empty (x INT); CREATE VIEW " + db + ".v AS SELECT id FROM " + db + ".orders")
	e := newEnv(t, v1.Source{Name: "my", MySQL: &v1.MySQLSource{Socket: s.socket, User: s.user, PasswordFile: s.pwd, Databases: []string{db}}})
	e.policy.Spec.Drills.Checks = []v1.DrillCheck{{Source: "my", SQL: "SELECT COUNT(*) FROM orders WHERE note LIKE 'it''s%'", Min: int64p(777)}}
	e.backup(time.Now())
	res, err := Run(context.Background(), e.policy, e.options())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := res.Sources[0].Databases
	if len(got) != 1 || got[0].Tables != 2 || got[0].Rows != 777 || got[0].ChecksPassed != 1 {
		t.Errorf("databases %+v", got)
	}
	if len(got) == 1 && s.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '"+got[0].TemporaryDB+"'") != "0" {
		t.Errorf("temporary database %s left", got[0].TemporaryDB)
	}
	e.assertClean()
}

func TestCompareTables(t *testing.T) {
	for _, tc := range []struct {
		name      string
		want, got map[string]int64
		err       string
	}{
		{"same", map[string]int64{"a": 1, "b": 0}, map[string]int64{"a": 1, "b": 0}, ""},
		{"rows", map[string]int64{"a": 2}, map[string]int64{"a": 1}, "table a has 1 rows, the dump holds 2"},
		{"missing and extra", map[string]int64{"a": 2}, map[string]int64{"b": 2}, "table a of the dump is missing, table b is not in the dump"},
	} {
		err := compareTables(tc.want, tc.got)
		if got := fmt.Sprint(err); (tc.err == "" && err != nil) || (tc.err != "" && got != tc.err) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.err)
		}
	}
}
