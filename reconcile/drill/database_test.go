package drill

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/postgres"
	"github.com/aegis-backup/aegis/test/testenv"
)

// pgServer is the test PostgreSQL server of hack/server-postgres.sh.
type pgServer struct {
	t          testing.TB
	host, user string
	pwd        string
	port       int
}

func requirePostgres(t testing.TB) *pgServer {
	t.Helper()
	env := testenv.Require(t, "PostgreSQL server", "AEGIS_TEST_PG_HOST", "AEGIS_TEST_PG_PORT", "AEGIS_TEST_PG_USER", "AEGIS_TEST_PG_PASSWORD_FILE")
	port, _ := strconv.Atoi(env["AEGIS_TEST_PG_PORT"])
	return &pgServer{t: t, host: env["AEGIS_TEST_PG_HOST"], port: port, user: env["AEGIS_TEST_PG_USER"], pwd: env["AEGIS_TEST_PG_PASSWORD_FILE"]}
}

func (s *pgServer) psql(db, sql string) string {
	s.t.Helper()
	pw, err := os.ReadFile(s.pwd)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command("psql", "-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", s.host, "-p", strconv.Itoa(s.port), "-U", s.user, "-d", db)
	cmd.Stdin = strings.NewReader(sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+strings.TrimSpace(string(pw)))
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("psql %s: %v\n%s", db, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (s *pgServer) source(db string) v1.Source {
	return v1.Source{Name: "pg", Postgres: &v1.PostgresSource{Host: s.host, Port: s.port, User: s.user, PasswordFile: s.pwd, Databases: []string{db}}}
}

// exists reports whether the server has database db.
func (s *pgServer) exists(db string) bool {
	return s.psql("postgres", "SELECT count(*) FROM pg_database WHERE datname = '"+db+"'") != "0"
}

func (s *pgServer) shop(t testing.TB) string {
	db := fmt.Sprintf("drillshop_%d", os.Getpid())
	s.psql("postgres", "DROP DATABASE IF EXISTS "+db+"; CREATE DATABASE "+db)
	t.Cleanup(func() { s.psql("postgres", "DROP DATABASE IF EXISTS "+db) })
	s.psql(db, `CREATE TABLE orders (id int PRIMARY KEY, note text);
		INSERT INTO orders SELECT g, 'line' || g || E'\nwith a break' FROM generate_series(1, 1234) g;
		CREATE SCHEMA "Sales"; CREATE TABLE "Sales"."Empty Table" (x int);
		CREATE VIEW big_orders AS SELECT * FROM orders WHERE id > 1000;`)
	return db
}

func int64p(v int64) *int64 { return &v }

func TestPostgresDrill(t *testing.T) {
	s := requirePostgres(t)
	db := s.shop(t)
	e := newEnv(t, s.source(db))
	e.policy.Spec.Drills.Checks = []v1.DrillCheck{{SQL: "select count(*) from orders", Min: int64p(1)}, {SQL: "select count(*) from big_orders", Min: int64p(234), Max: int64p(234)}}
	e.backup(time.Now())
	res, err := Run(context.Background(), e.policy, e.options())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := res.Sources[0].Databases
	if len(got) != 1 || got[0].Name != db || got[0].Tables != 2 || got[0].Rows != 1234 || got[0].ChecksPassed != 2 ||
		!strings.HasPrefix(got[0].TemporaryDB, TempDBPrefix) {
		t.Errorf("databases %+v", got)
	}
	if len(got) == 1 && s.exists(got[0].TemporaryDB) {
		t.Errorf("temporary database %s left", got[0].TemporaryDB)
	}
	e.assertClean()
}

func TestPostgresDrillFailingCheckDropsDatabase(t *testing.T) {
	s := requirePostgres(t)
	db := s.shop(t)
	e := newEnv(t, s.source(db))
	e.policy.Spec.Drills.Checks = []v1.DrillCheck{{SQL: "select count(*) from orders", Min: int64p(5000)}}
	e.backup(time.Now())
	res, err := Run(context.Background(), e.policy, e.options())
	want := fmt.Sprintf(`drill of policy web: source pg: database %s: check "select count(*) from orders": returned 1234, want at least 5000`, db)
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
	if q := res.Sources[0].Databases[0].Checks[0]; q.Value != 1234 || q.Result != v1.ResultFailed {
		t.Errorf("check %+v", q)
	}
	if temp := res.Sources[0].Databases[0].TemporaryDB; s.exists(temp) {
		t.Errorf("temporary database %s left", temp)
	}
	e.assertClean()
}

func TestPostgresDrillRefusesExistingTemporaryName(t *testing.T) {
	s := requirePostgres(t)
	db := s.shop(t)
	e := newEnv(t, s.source(db))
	e.backup(time.Now())
	// options() feeds bytes of 7: the seed takes 16, the name the next 8.
	name := TempDBPrefix + "0707070707070707"
	s.psql("postgres", "CREATE DATABASE "+name)
	defer s.psql("postgres", "DROP DATABASE IF EXISTS "+name)
	_, err := Run(context.Background(), e.policy, e.options())
	want := "drill of policy web: source pg: temporary database " + name + " exists already on the server: refusing to use it"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if got := s.psql("postgres", "SELECT count(*) FROM pg_database WHERE datname = '"+name+"'"); got != "1" {
		t.Errorf("the existing database was touched: count %s", got)
	}
	e.assertClean()
}

func TestCleanupDropsInterruptedTemporaryDatabase(t *testing.T) {
	s := requirePostgres(t)
	name := TempDBPrefix + "deadbeefdeadbeef"
	s.psql("postgres", "DROP DATABASE IF EXISTS "+name+"; CREATE DATABASE "+name)
	state := t.TempDir()
	if err := os.MkdirAll(state+"/"+dirName, 0o700); err != nil {
		t.Fatal(err)
	}
	j := &journal{path: state + "/" + dirName + "/" + journalName, body: journalBody{Policy: "web", Databases: []journalDB{
		{Kind: "postgres", Target: targetOf(&v1.BackupPolicy{}, s.source("x")), Name: name}}}}
	if err := j.save(); err != nil {
		t.Fatal(err)
	}
	if err := Cleanup(context.Background(), state, testLogger()); err != nil {
		t.Fatal(err)
	}
	if s.exists(name) {
		t.Errorf("temporary database %s left", name)
	}
	if _, err := os.Stat(j.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("journal still there")
	}
}

func TestPostgresDumpTables(t *testing.T) {
	got, err := countCopyRowsFor(t, "COPY public.orders (id, note) FROM stdin;\n1\ta\\nb\n2\tc\n\\.\n\nCOPY \"Sales\".\"Empty Table\" (x) FROM stdin;\n\\.\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["public.orders"] != 2 || got[`"Sales"."Empty Table"`] != 0 {
		t.Errorf("got %v", got)
	}
}

func countCopyRowsFor(t *testing.T, script string) (map[string]int64, error) {
	t.Helper()
	dir := t.TempDir()
	// pg_restore reads custom-format dumps only; the parser is what is
	// tested here, through a plain SQL file fed to it by a fake tool.
	tool := dir + "/pg_restore"
	if err := os.WriteFile(dir+"/script.sql", []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tool, []byte("#!/bin/sh\nexec cat "+dir+"/script.sql\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return postgres.DumpTables(context.Background(), "unused")
}
