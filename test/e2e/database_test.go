package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/test/testenv"
)

// pgServer is the PostgreSQL server of hack/server-postgres.sh.
type pgServer struct {
	t                     *testing.T
	host, port, user, pwd string
}

func requirePG(t *testing.T) *pgServer {
	t.Helper()
	env := testenv.Require(t, "PostgreSQL server", "AEGIS_TEST_PG_HOST", "AEGIS_TEST_PG_PORT", "AEGIS_TEST_PG_USER", "AEGIS_TEST_PG_PASSWORD_FILE")
	return &pgServer{t: t, host: env["AEGIS_TEST_PG_HOST"], port: env["AEGIS_TEST_PG_PORT"], user: env["AEGIS_TEST_PG_USER"], pwd: env["AEGIS_TEST_PG_PASSWORD_FILE"]}
}

func secret(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimRight(string(b), "\r\n")
}

// psqlAs runs sql on db as user (password pw) and returns the rows (-A -t).
func (s *pgServer) psqlAs(user, pw, db, sql string) (string, error) {
	cmd := exec.Command("psql", "-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", s.host, "-p", s.port, "-U", user, "-d", db)
	cmd.Stdin = strings.NewReader(sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+pw)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("psql: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func (s *pgServer) psql(db, sql string) string {
	s.t.Helper()
	out, err := s.psqlAs(s.user, secret(s.t, s.pwd), db, sql)
	if err != nil {
		s.t.Fatalf("%v\n%s", err, sql)
	}
	return out
}

// pgState describes a database: every table's rows (count and a checksum
// of the rows in order), the objects with their owners, the view and
// function definitions, the sequence positions.
func (s *pgServer) pgState(db string) map[string]string {
	s.t.Helper()
	st := map[string]string{}
	tables := strings.Fields(s.psql(db, `SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`))
	for _, tb := range tables {
		st["table "+tb] = s.psql(db, fmt.Sprintf(`SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, E'\n' ORDER BY t::text)), '-') FROM %s t`, tb))
	}
	st["objects"] = s.psql(db, `SELECT c.relkind::text || ' ' || c.relname || ' owner=' || pg_get_userbyid(c.relowner) || ' acl=' || coalesce(c.relacl::text, '')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' ORDER BY 1`)
	st["views"] = s.psql(db, `SELECT viewname || ': ' || definition FROM pg_views WHERE schemaname = 'public' ORDER BY 1`)
	st["functions"] = s.psql(db, `SELECT proname || '(' || pg_get_function_arguments(oid) || ') ' || md5(pg_get_functiondef(oid)) FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1`)
	st["sequences"] = s.psql(db, `SELECT sequencename || '=' || coalesce(last_value::text, 'null') FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1`)
	st["database"] = s.psql("postgres", fmt.Sprintf(`SELECT pg_get_userbyid(datdba) || ' ' || pg_encoding_to_char(encoding) FROM pg_database WHERE datname = '%s'`, db))
	return st
}

func compareStates(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %s differs:\n got: %s\nwant: %s", what, k, got[k], w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected %s", what, k)
		}
	}
}

func pgPolicy(s *pgServer, db, passwordFile string) string {
	return destination("disk", "@ROOT@/backups") + `---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: db
spec:
  schedule: "@daily"
  sources:
    - name: pg
      postgres:
        host: ` + s.host + `
        port: ` + s.port + `
        user: ` + s.user + `
        passwordFile: ` + passwordFile + `
        databases: [` + db + `]
  destinations: [disk]
  encryption:
    age:
      recipients: ["@RECIPIENT@"]
`
}

func TestPostgresBackupDropRestore(t *testing.T) {
	s := requirePG(t)
	e := newEnv(t)
	db := fmt.Sprintf("aegis_shop_%d", os.Getpid())
	role := fmt.Sprintf("aegis_app_%d", os.Getpid())
	cleanup := func() {
		s.psql("postgres", fmt.Sprintf("DROP DATABASE IF EXISTS %[1]s WITH (FORCE); DROP DATABASE IF EXISTS %[1]s_copy WITH (FORCE); DROP ROLE IF EXISTS %[2]s;", db, role))
	}
	cleanup()
	t.Cleanup(cleanup)
	s.psql("postgres", fmt.Sprintf("CREATE ROLE %[2]s LOGIN PASSWORD 'app-secret' CONNECTION LIMIT 7; CREATE DATABASE %[1]s OWNER %[2]s;", db, role))
	s.psql(db, `SET ROLE `+role+`;
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE, created timestamptz NOT NULL DEFAULT '2026-01-01');
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id), amount numeric(10,2), tags text[], meta jsonb, blob bytea);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE SEQUENCE invoice_seq START 1000;
SELECT setval('invoice_seq', 4242);
CREATE VIEW big_orders AS SELECT o.id, c.name, o.amount FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.amount > 500;
CREATE FUNCTION order_total(cid int) RETURNS numeric LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (SELECT coalesce(sum(amount), 0) FROM orders WHERE customer_id = cid);
END $$;
INSERT INTO customers (name, email) SELECT 'customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 2000) g;
INSERT INTO orders (customer_id, amount, tags, meta, blob)
  SELECT 1 + g % 2000, (g * 37 % 100000) / 100.0, ARRAY['t' || g % 7, 'ü€'], jsonb_build_object('n', g, 'odd', g % 2 = 1), decode(md5(g::text), 'hex')
  FROM generate_series(1, 30000) g;
RESET ROLE;
GRANT SELECT ON big_orders TO PUBLIC;`)
	want := s.pgState(db)
	if want["sequences"] == "" || !strings.Contains(want["objects"], "v big_orders") || !strings.Contains(want["functions"], "order_total(cid integer)") {
		t.Fatalf("test database incomplete: %v", want)
	}
	wantRole := s.psql("postgres", "SELECT rolname, rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = '"+role+"'")

	e.write("db.yaml", pgPolicy(s, db, s.pwd))
	r := e.run("run", "db")
	r.mustCode(t, 0)
	st := entry(t, e.status("db.yaml"), v1.KindBackupPolicy, "db")
	src := st.LastRun.Sources[0]
	if src.Meta["databases"] != db || !strings.HasPrefix(src.Meta["serverVersion"], "1") || src.Meta["globals"] != "included" {
		t.Errorf("status meta %v", src.Meta)
	}
	snaps := e.snapshots("db")
	if len(snaps) != 1 {
		t.Fatalf("%d snapshots", len(snaps))
	}
	m := snaps[0].Manifest
	if got := objectNames(m); got != "_globals.sql "+db+".pgdump" {
		t.Errorf("objects %q", got)
	}
	if m.Meta["databases"] != db || m.Meta["serverVersion"] == "" {
		t.Errorf("manifest meta %v", m.Meta)
	}

	// Recovery by hand, as docs/format.md says: age, zstd, pg_restore.
	key := filepath.Join(snapDir(e, snaps[0]), db+".pgdump.zst.age")
	dump := filepath.Join(e.root, "by-hand.pgdump")
	sh(t, fmt.Sprintf("age -d -i %s %s | zstd -d > %s && pg_restore --list %s | grep -q 'TABLE DATA public orders'", e.identity, key, dump, dump))

	// Drop the database and the role, then restore both.
	s.psql("postgres", fmt.Sprintf("DROP DATABASE %s WITH (FORCE); DROP ROLE %s;", db, role))
	target := filepath.Join(e.root, "restore")
	r = e.run("restore", "db", "--identity", e.identity, "--target", target,
		"--load-into", s.host+":"+s.port, "--db-user", s.user, "--db-password-file", s.pwd, "--globals")
	r.mustCode(t, 0)
	if !strings.Contains(r.stdout, "loaded database "+db+" into "+db) {
		t.Errorf("restore output:\n%s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(target, "pg", db+".pgdump")); err != nil {
		t.Errorf("the dump is not in --target: %v", err)
	}
	compareStates(t, "restored database", want, s.pgState(db))
	if got := s.psql("postgres", "SELECT rolname, rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = '"+role+"'"); got != wantRole {
		t.Errorf("role %q, want %q", got, wantRole)
	}
	// The role has its password back, and its function works.
	if out, err := s.psqlAs(role, "app-secret", db, "SELECT order_total(7)"); err != nil || out == "" {
		t.Errorf("log in as the restored role: %v %s", err, out)
	}

	// Again: refused, the database has tables now.
	r = e.run("restore", "db", "--identity", e.identity, "--target", filepath.Join(e.root, "restore2"),
		"--load-into", s.host+":"+s.port, "--db-user", s.user, "--db-password-file", s.pwd)
	r.mustCode(t, 1)
	if !strings.Contains(r.stderr, `database "`+db+`" on the server already has`) || !strings.Contains(r.stderr, "refusing to overwrite it") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	// Under another name, it loads beside it.
	r = e.run("restore", "db", "--identity", e.identity, "--target", filepath.Join(e.root, "restore3"),
		"--load-into", s.host+":"+s.port, "--db-user", s.user, "--db-password-file", s.pwd, "--database", db+"="+db+"_copy")
	r.mustCode(t, 0)
	copyState := s.pgState(db + "_copy")
	delete(copyState, "database")
	delete(want, "database")
	compareStates(t, "copy", want, copyState)
}

func objectNames(m v1.SnapshotManifest) string {
	var names []string
	for _, o := range m.Objects {
		names = append(names, o.Name)
	}
	return strings.Join(names, " ")
}

func sh(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

// myServer is the MariaDB server of hack/server-mariadb.sh.
type myServer struct {
	t                     *testing.T
	host, port, user, pwd string
	cnf                   string
}

func requireMySQL(t *testing.T) *myServer {
	t.Helper()
	env := testenv.Require(t, "MariaDB server", "AEGIS_TEST_MYSQL_HOST", "AEGIS_TEST_MYSQL_PORT", "AEGIS_TEST_MYSQL_USER", "AEGIS_TEST_MYSQL_PASSWORD_FILE")
	s := &myServer{t: t, host: env["AEGIS_TEST_MYSQL_HOST"], port: env["AEGIS_TEST_MYSQL_PORT"], user: env["AEGIS_TEST_MYSQL_USER"], pwd: env["AEGIS_TEST_MYSQL_PASSWORD_FILE"]}
	s.cnf = filepath.Join(t.TempDir(), "client.cnf")
	pw := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(secret(t, s.pwd))
	os.WriteFile(s.cnf, []byte("[client]\npassword=\""+pw+"\"\n"), 0o600)
	return s
}

func (s *myServer) client(args ...string) *exec.Cmd {
	return exec.Command("mariadb", append([]string{"--defaults-file=" + s.cnf, "-h", s.host, "-P", s.port, "-u", s.user, "--batch", "--skip-column-names"}, args...)...)
}

func (s *myServer) sql(stmts string) string {
	s.t.Helper()
	cmd := s.client()
	cmd.Stdin = strings.NewReader(stmts)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("mariadb: %v\n%s\n%s", err, stmts, out)
	}
	return strings.TrimSpace(string(out))
}

// myState describes a database: each table's row count and checksum, and
// the definitions of its views, routines, triggers and events.
func (s *myServer) myState(db string) map[string]string {
	s.t.Helper()
	st := map[string]string{}
	for _, tb := range strings.Fields(s.sql("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '" + db + "' AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1")) {
		cs := strings.Fields(s.sql("CHECKSUM TABLE `" + db + "`.`" + tb + "` EXTENDED"))
		st["table "+tb] = s.sql("SELECT COUNT(*) FROM `"+db+"`.`"+tb+"`") + " " + cs[len(cs)-1]
	}
	// A view's definition names its database: compare it without.
	st["views"] = s.sql("SELECT TABLE_NAME, MD5(REPLACE(VIEW_DEFINITION, '`" + db + "`.', '')) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '" + db + "' ORDER BY 1")
	st["routines"] = s.sql("SELECT ROUTINE_TYPE, ROUTINE_NAME, MD5(ROUTINE_DEFINITION) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '" + db + "' ORDER BY 2")
	st["triggers"] = s.sql("SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, MD5(ACTION_STATEMENT) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '" + db + "' ORDER BY 1")
	st["events"] = s.sql("SELECT EVENT_NAME, MD5(EVENT_DEFINITION) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '" + db + "' ORDER BY 1")
	st["charset"] = s.sql("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '" + db + "'")
	return st
}

// writeLoad runs transfers between accounts through one client session
// until stop is closed; each transfer moves money and writes a ledger row
// in one transaction, and a trigger counts the ledger rows.
func (s *myServer) writeLoad(db string, stop <-chan struct{}, calls *atomic.Int64) *exec.Cmd {
	s.t.Helper()
	cmd := s.client("--database=" + db)
	in, err := cmd.StdinPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() {
		defer in.Close()
		w := bufio.NewWriter(in)
		for i := 0; ; i++ {
			select {
			case <-stop:
				w.Flush()
				return
			default:
			}
			fmt.Fprintf(w, "CALL transfer(%d, %d, %d);\n", 1+i%50, 1+(i*7+3)%50, 1+i%90)
			if i%20 == 0 {
				w.Flush()
			}
			calls.Add(1)
		}
	}()
	return cmd
}

func TestMariaDBBackupUnderLoadDropRestore(t *testing.T) {
	s := requireMySQL(t)
	e := newEnv(t)
	db := fmt.Sprintf("aegis_bank_%d", os.Getpid())
	user := fmt.Sprintf("aegis_teller_%d", os.Getpid())
	cleanup := func() {
		s.sql(fmt.Sprintf("DROP DATABASE IF EXISTS %[1]s; DROP DATABASE IF EXISTS %[1]s_copy; DROP USER IF EXISTS '%[2]s'@'127.0.0.1';", db, user))
	}
	cleanup()
	t.Cleanup(cleanup)
	s.sql(fmt.Sprintf(`CREATE DATABASE %[1]s CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE %[1]s;
CREATE TABLE accounts (id INT PRIMARY KEY, owner VARCHAR(40) NOT NULL, balance BIGINT NOT NULL) ENGINE=InnoDB;
CREATE TABLE ledger (id BIGINT AUTO_INCREMENT PRIMARY KEY, src INT, dst INT, amount BIGINT, at DATETIME(6) DEFAULT NOW(6)) ENGINE=InnoDB;
CREATE TABLE counters (name VARCHAR(20) PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB;
CREATE TABLE archive (id INT PRIMARY KEY, payload TEXT, data BLOB, price DECIMAL(12,2), day DATE) ENGINE=InnoDB;
INSERT INTO counters VALUES ('ledger', 0);
INSERT INTO accounts SELECT seq, CONCAT('owner ', seq, ' ü€'), 1000 FROM seq_1_to_50;
INSERT INTO archive SELECT seq, REPEAT(CONCAT('row ', seq, ' '), 20), UNHEX(MD5(seq)), seq / 7, '2026-01-01' + INTERVAL seq %% 365 DAY FROM seq_1_to_60000;
CREATE TRIGGER ledger_count AFTER INSERT ON ledger FOR EACH ROW UPDATE counters SET n = n + 1 WHERE name = 'ledger';
DELIMITER //
CREATE PROCEDURE transfer(a INT, b INT, amt BIGINT)
BEGIN
  START TRANSACTION;
  UPDATE accounts SET balance = balance - amt WHERE id = a;
  UPDATE accounts SET balance = balance + amt WHERE id = b;
  INSERT INTO ledger (src, dst, amount) VALUES (a, b, amt);
  COMMIT;
END //
CREATE FUNCTION total() RETURNS BIGINT READS SQL DATA RETURN (SELECT SUM(balance) FROM accounts) //
DELIMITER ;
CREATE VIEW rich AS SELECT id, owner, balance FROM accounts WHERE balance > 1000;
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01' DISABLE DO DELETE FROM ledger WHERE at < NOW() - INTERVAL 1 YEAR;
CREATE USER '%[2]s'@'127.0.0.1' IDENTIFIED BY 'teller-secret';
GRANT SELECT, EXECUTE ON %[1]s.* TO '%[2]s'@'127.0.0.1';`, db, user))

	// Writes run during the whole backup.
	stop := make(chan struct{})
	var calls atomic.Int64
	load := s.writeLoad(db, stop, &calls)
	var stopOnce sync.Once
	stopLoad := func() {
		stopOnce.Do(func() {
			close(stop)
			load.Wait()
		})
	}
	t.Cleanup(stopLoad)
	waitFor(t, "the write load", 30*time.Second, func() bool { return calls.Load() > 200 })
	before, _ := strconv.Atoi(s.sql("SELECT COUNT(*) FROM " + db + ".ledger"))

	e.write("bank.yaml", destination("disk", "@ROOT@/backups")+`---
apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: bank
spec:
  schedule: "@daily"
  sources:
    - name: my
      mysql:
        host: `+s.host+`
        port: `+s.port+`
        user: `+s.user+`
        passwordFile: `+s.pwd+`
        databases: [`+db+`]
  destinations: [disk]
  encryption:
    age:
      recipients: ["@RECIPIENT@"]
`)
	r := e.run("run", "bank")
	r.mustCode(t, 0)
	after, _ := strconv.Atoi(s.sql("SELECT COUNT(*) FROM " + db + ".ledger"))
	stopLoad()
	if after <= before {
		t.Fatalf("the write load did not run during the backup (%d ledger rows before, %d after)", before, after)
	}
	src := entry(t, e.status("bank.yaml"), v1.KindBackupPolicy, "bank").LastRun.Sources[0]
	if src.Meta["databases"] != db || !strings.Contains(src.Meta["serverVersion"], "MariaDB") || src.Meta["users"] != "included" {
		t.Errorf("status meta %v", src.Meta)
	}

	// Load it beside the original: a consistent snapshot taken while
	// transfers ran.
	loadArgs := []string{"--load-into", s.host + ":" + s.port, "--db-user", s.user, "--db-password-file", s.pwd}
	r = e.run(append([]string{"restore", "bank", "--identity", e.identity, "--target", filepath.Join(e.root, "r1"), "--database", db + "=" + db + "_copy"}, loadArgs...)...)
	r.mustCode(t, 0)
	copyDB := db + "_copy"
	k, _ := strconv.Atoi(s.sql("SELECT COUNT(*) FROM " + copyDB + ".ledger"))
	if k < before || k > after {
		t.Errorf("the snapshot holds %d ledger rows; the backup ran while there were %d to %d", k, before, after)
	}
	if got := s.sql("SELECT SUM(balance) FROM " + copyDB + ".accounts"); got != "50000" {
		t.Errorf("money in the snapshot: %s, want 50000: the dump is not consistent", got)
	}
	if got := s.sql("SELECT n FROM " + copyDB + ".counters"); got != strconv.Itoa(k) {
		t.Errorf("the trigger's counter says %s, the ledger has %d rows: not consistent", got, k)
	}
	if got, want := s.sql("SELECT MD5(GROUP_CONCAT(id, src, dst, amount, at ORDER BY id)) FROM "+copyDB+".ledger"),
		s.sql(fmt.Sprintf("SELECT MD5(GROUP_CONCAT(id, src, dst, amount, at ORDER BY id)) FROM %s.ledger WHERE id <= %d", db, k)); got != want {
		t.Error("the snapshot's ledger is not the original's first rows")
	}
	if got := s.sql("SELECT " + copyDB + ".total()"); got != "50000" {
		t.Errorf("the restored function says %s", got)
	}
	want := s.myState(db)
	gotCopy := s.myState(copyDB)
	for _, k := range []string{"table archive", "views", "routines", "triggers", "events", "charset"} {
		if gotCopy[k] != want[k] {
			t.Errorf("copy: %s differs:\n got: %s\nwant: %s", k, gotCopy[k], want[k])
		}
	}

	// Drop the database and the user; restore both under their names.
	want = gotCopy
	s.sql(fmt.Sprintf("DROP DATABASE %s; DROP USER '%s'@'127.0.0.1';", db, user))
	r = e.run(append([]string{"restore", "bank", "--identity", e.identity, "--target", filepath.Join(e.root, "r2"), "--globals"}, loadArgs...)...)
	r.mustCode(t, 0)
	compareStates(t, "restored database", want, s.myState(db))
	teller := filepath.Join(e.root, "teller.cnf")
	os.WriteFile(teller, []byte("[client]\npassword=\"teller-secret\"\n"), 0o600)
	grants := exec.Command("mariadb", "--defaults-file="+teller, "-h", s.host, "-P", s.port, "-u", user, "--batch", "--skip-column-names", "-e", "SELECT "+db+".total()")
	if out, err := grants.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "50000" {
		t.Errorf("the restored user cannot use the database: %v %s", err, out)
	}

	// Again: refused, the database has tables.
	r = e.run(append([]string{"restore", "bank", "--identity", e.identity, "--target", filepath.Join(e.root, "r3")}, loadArgs...)...)
	r.mustCode(t, 1)
	if !strings.Contains(r.stderr, `database "`+db+`" on the server already has`) {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

// TestDumpFailures: each way a dump fails fails its source, with the
// tool's own words in the status, publishes nothing of it, and leaves the
// other sources of the policy alone.
func TestDumpFailures(t *testing.T) {
	pg := requirePG(t)
	my := requireMySQL(t)
	e := newEnv(t)
	smallTree(t, e)
	wrong := filepath.Join(e.root, "wrong-password")
	os.WriteFile(wrong, []byte("not-the-password\n"), 0o600)
	pgSource := func(name, db, pw string) string {
		return `
    - name: ` + name + `
      postgres:
        host: ` + pg.host + `
        port: ` + pg.port + `
        user: ` + pg.user + `
        passwordFile: ` + pw + `
        databases: [` + db + `]`
	}
	mySource := func(name, port, pw string) string {
		return `
    - name: ` + name + `
      mysql:
        host: ` + my.host + `
        port: ` + port + `
        user: ` + my.user + `
        passwordFile: ` + pw
	}
	policy := func(name, sources string) string {
		return `apiVersion: aegis.io/v1
kind: BackupPolicy
metadata:
  name: ` + name + `
spec:
  schedule: "@daily"
  sources:
    - name: files
      files:
        paths: ["@ROOT@/src"]` + sources + `
  destinations: [disk]
  encryption:
    age:
      recipients: ["@RECIPIENT@"]
`
	}

	// A dump tool that fails halfway, and a missing one: a PATH of their own.
	tools := filepath.Join(e.root, "tools")
	os.MkdirAll(tools, 0o755)
	for _, tool := range []string{"psql", "pg_dumpall", "mariadb"} {
		real, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		os.Symlink(real, filepath.Join(tools, tool))
	}
	os.WriteFile(filepath.Join(tools, "pg_dump"), []byte(`#!/bin/sh
case "$1" in --version) echo "pg_dump (PostgreSQL) 99.0"; exit 0;; esac
/usr/bin/head -c 3000000 /dev/urandom
echo 'pg_dump: error: Dumping the contents of table "orders" failed: PQgetResult() failed.' >&2
echo 'pg_dump: error: Error message from server: server closed the connection unexpectedly' >&2
exit 1
`), 0o755)

	e.write("p.yaml", destination("disk", "@ROOT@/backups")+"---\n"+
		policy("direct", pgSource("pg-wrong-password", "postgres", wrong)+pgSource("pg-missing-db", "aegis_no_such_db", pg.pwd)+
			mySource("my-down", "1", my.pwd)+mySource("my-wrong-password", my.port, wrong))+"---\n"+
		policy("tools", pgSource("pg-halfway", "postgres", pg.pwd)+mySource("my-no-tool", my.port, my.pwd)))

	r := e.run("run", "direct")
	r.mustCode(t, 1)
	cmd := e.command("run", "tools")
	cmd.Env = append(cmd.Env, "PATH="+tools)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("run tools succeeded:\n%s", out)
	}

	want := map[string]map[string]string{
		"direct": {
			"pg-wrong-password": `psql failed (exit status 2): psql: error: connection to server at "` + pg.host + `", port ` + pg.port + ` failed: FATAL:  password authentication failed for user "` + pg.user + `"`,
			"pg-missing-db":     `FATAL:  database "aegis_no_such_db" does not exist`,
			"my-down":           `ERROR 2002 (HY000): Can't connect to server on '` + my.host + `'`,
			"my-wrong-password": `ERROR 1045 (28000): Access denied for user '` + my.user + `'@'127.0.0.1' (using password: YES)`,
		},
		"tools": {
			"pg-halfway": `pg_dump failed (exit status 1): pg_dump: error: Dumping the contents of table "orders" failed: PQgetResult() failed.` + "\n" +
				`pg_dump: error: Error message from server: server closed the connection unexpectedly`,
			"my-no-tool": `none of mariadb-dump, mysqldump found on PATH`,
		},
	}
	sf := e.status("p.yaml")
	for policy, sources := range want {
		st := entry(t, sf, v1.KindBackupPolicy, policy)
		if st.LastRun == nil || st.LastRun.Result != v1.ResultPartiallyFailed {
			t.Fatalf("%s: last run %+v", policy, st.LastRun)
		}
		ready := condition(t, st, v1.ConditionReady)
		for _, sr := range st.LastRun.Sources {
			switch msg, ok := sources[sr.Name]; {
			case sr.Name == "files":
				if sr.Result != v1.ResultSucceeded {
					t.Errorf("%s: the files source failed too: %+v", policy, sr)
				}
			case !ok:
				t.Errorf("%s: unexpected source %s", policy, sr.Name)
			case sr.Result != v1.ResultFailed || !strings.Contains(sr.Error, msg):
				t.Errorf("%s/%s: %s %q\nwant the error to contain %q", policy, sr.Name, sr.Result, sr.Error, msg)
			case !strings.Contains(ready.Message, "source "+sr.Name+": "):
				t.Errorf("%s: Ready does not name %s: %s", policy, sr.Name, ready.Message)
			}
			if strings.Contains(sr.Error, "not-the-password") {
				t.Errorf("%s/%s: the error holds the password", policy, sr.Name)
			}
		}
	}
	// Only the files sources were published; nothing is left of the others
	// but, at most, unfinished uploads that retention removes.
	host, _ := os.Hostname()
	for _, p := range manifestsUnder(t, filepath.Join(e.root, "backups")) {
		if !strings.Contains(p, "/files/") {
			t.Errorf("published: %s", p)
		}
	}
	halfway, _ := filepath.Glob(filepath.Join(e.root, "backups", host, "tools", "pg-halfway", "*", "*"))
	for _, f := range halfway {
		if !strings.HasPrefix(filepath.Base(f), ".aegis-tmp-") {
			t.Errorf("left behind: %s", f)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(e.logs, "*.log"))
	for _, l := range logs {
		if b, _ := os.ReadFile(l); strings.Contains(string(b), "not-the-password") || strings.Contains(string(b), secret(t, pg.pwd)) {
			t.Errorf("%s holds a password", l)
		}
	}
}

// TestPgbenchBackupTime measures the backup of a pgbench database against
// a bare pg_dump to /dev/null. It runs only when AEGIS_BENCH_PGBENCH_SCALE
// is set (50 for the figures: about 750 MB).
func TestPgbenchBackupTime(t *testing.T) {
	scale := os.Getenv("AEGIS_BENCH_PGBENCH_SCALE")
	if scale == "" {
		t.Skip("set AEGIS_BENCH_PGBENCH_SCALE (e.g. 50) to measure")
	}
	s := requirePG(t)
	e := newEnv(t)
	db := fmt.Sprintf("aegis_pgbench_%d", os.Getpid())
	s.psql("postgres", "DROP DATABASE IF EXISTS "+db+"; CREATE DATABASE "+db+";")
	t.Cleanup(func() { s.psql("postgres", "DROP DATABASE IF EXISTS "+db+";") })
	pgbench := exec.Command("pgbench", "-q", "-i", "-s", scale, "-h", s.host, "-p", s.port, "-U", s.user, db)
	pgbench.Env = append(os.Environ(), "PGPASSWORD="+secret(t, s.pwd))
	if out, err := pgbench.CombinedOutput(); err != nil {
		t.Fatalf("pgbench: %v\n%s", err, out)
	}
	t.Logf("database %s: %s", db, s.psql("postgres", "SELECT pg_size_pretty(pg_database_size('"+db+"'))"))
	e.write("db.yaml", pgPolicy(s, db, s.pwd))

	timeIt := func(cmd *exec.Cmd) time.Duration {
		t0 := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
		return time.Since(t0)
	}
	pgDump := func(args ...string) *exec.Cmd {
		cmd := exec.Command("sh", "-c", `pg_dump "$@" > /dev/null`, "pg_dump")
		cmd.Args = append(cmd.Args, append([]string{"-h", s.host, "-p", s.port, "-U", s.user, "-d", db}, args...)...)
		cmd.Env = append(os.Environ(), "PGPASSWORD="+secret(t, s.pwd))
		return cmd
	}
	median := func(ds []time.Duration) time.Duration {
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	var bare, bareZ0, agent []time.Duration
	for range 5 {
		bare = append(bare, timeIt(pgDump("-Fc")))
		bareZ0 = append(bareZ0, timeIt(pgDump("-Fc", "-Z0")))
		agent = append(agent, timeIt(e.command("run", "db")))
	}
	snaps := e.snapshots("db")
	last := snaps[len(snaps)-1].Manifest
	var raw, stored int64
	for _, o := range last.Objects {
		raw += o.RawSize
		stored += o.Size
	}
	t.Logf("pg_dump -Fc > /dev/null:      median %s of %v", median(bare), bare)
	t.Logf("pg_dump -Fc -Z0 > /dev/null:  median %s of %v", median(bareZ0), bareZ0)
	t.Logf("aegis-agent run (pg_dump -Fc -Z0 | zstd 3 | age | local disk, globals too): median %s of %v", median(agent), agent)
	t.Logf("dump %d bytes, stored %d bytes", raw, stored)
}
