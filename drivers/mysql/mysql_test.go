package mysql

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/internal/dbtest"
)

type memWriter struct {
	mu      sync.Mutex
	objects map[string][]byte
	order   []string
}

type memObject struct {
	w    *memWriter
	name string
	buf  bytes.Buffer
}

func (o *memObject) Write(p []byte) (int, error) { return o.buf.Write(p) }
func (o *memObject) Close() error {
	o.w.mu.Lock()
	defer o.w.mu.Unlock()
	o.w.objects[o.name] = o.buf.Bytes()
	return nil
}

func (m *memWriter) Create(_ context.Context, name, format string) (io.WriteCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if format != DumpFormat {
		return nil, fmt.Errorf("format %q", format)
	}
	m.order = append(m.order, name)
	return &memObject{w: m, name: name}, nil
}

type testServer struct {
	t *testing.T
	dbtest.Server
}

func requireServer(t *testing.T) *testServer {
	t.Helper()
	return &testServer{t: t, Server: dbtest.Require(t, "MariaDB server", "AEGIS_TEST_MYSQL_", "SOCKET")}
}

// sql runs statements through the client, as the test user.
func (s *testServer) sql(stmts string) string {
	s.t.Helper()
	c, err := newConn(s.Host, s.Port, "", s.User, s.PasswordFile)
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.close()
	cmd := c.cmd("mariadb", "--batch", "--skip-column-names")
	ec := exec.Command(cmd.Path, cmd.Args...)
	ec.Stdin = strings.NewReader(stmts)
	out, err := ec.CombinedOutput()
	if err != nil {
		s.t.Fatalf("mariadb: %v\n%s\n%s", err, stmts, out)
	}
	return strings.TrimSpace(string(out))
}

func (s *testServer) spec(dbs ...string) v1.MySQLSource {
	return v1.MySQLSource{Host: s.Host, Port: s.Port, User: s.User, PasswordFile: s.PasswordFile, Databases: dbs}
}

func TestBackupAndLoad(t *testing.T) {
	s := requireServer(t)
	db := fmt.Sprintf("aegis_drv_%d", os.Getpid())
	s.sql("DROP DATABASE IF EXISTS " + db + "; CREATE DATABASE " + db + " CHARACTER SET latin1 COLLATE latin1_swedish_ci;" +
		"CREATE TABLE " + db + ".t (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB;" +
		"CREATE TABLE " + db + ".m (id INT) ENGINE=MyISAM;" +
		"INSERT INTO " + db + ".t VALUES (1, 'one'), (2, 'two');")
	t.Cleanup(func() { s.sql("DROP DATABASE IF EXISTS " + db + "; DROP DATABASE IF EXISTS " + db + "_copy;") })

	w := &memWriter{objects: map[string][]byte{}}
	stats, err := New(s.spec(db), Options{}).Backup(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(w.order, " "), db+".sql "+UsersObject; got != want {
		t.Errorf("objects %q, want %q", got, want)
	}
	dump := string(w.objects[db+".sql"])
	for _, want := range []string{"CREATE TABLE `t`", "(1,'one')", "(2,'two')", "-- Dump completed"} {
		if !strings.Contains(dump, want) {
			t.Errorf("dump lacks %q", want)
		}
	}
	if strings.Contains(dump, "USE `") || strings.Contains(dump, "CREATE DATABASE") {
		t.Error("the dump names its database; it must load under any name")
	}
	if !bytes.Contains(w.objects[UsersObject], []byte("CREATE USER IF NOT EXISTS `aegis`@`127.0.0.1`")) {
		t.Errorf("users dump:\n%s", w.objects[UsersObject])
	}
	if stats.Meta[MetaDatabases] != db || stats.Meta["charset."+db] != "latin1" || stats.Meta[MetaUsers] != "included" {
		t.Errorf("meta %v", stats.Meta)
	}
	if len(stats.Warnings) != 1 || !strings.Contains(stats.Warnings[0], "tables m (MyISAM) have no transactions") {
		t.Errorf("warnings %q", stats.Warnings)
	}

	dir := t.TempDir()
	m := &v1.SnapshotManifest{ID: "x", Source: "my", SourceKind: "mysql", Meta: stats.Meta}
	for _, name := range w.order {
		os.WriteFile(filepath.Join(dir, name), w.objects[name], 0o600)
		m.Objects = append(m.Objects, v1.SnapshotObject{Name: name, Format: DumpFormat})
	}
	lo := LoadOptions{Host: s.Host, Port: s.Port, User: s.User, PasswordFile: s.PasswordFile}
	if _, err := Load(context.Background(), dir, m, lo); err == nil || !strings.Contains(err.Error(), `database "`+db+`" on the server already has 2 tables`) {
		t.Fatalf("load over a database with tables: %v", err)
	}
	lo.Databases = map[string]string{db: db + "_copy"}
	lo.Globals = true
	if _, err := Load(context.Background(), dir, m, lo); err != nil {
		t.Fatal(err)
	}
	if got := s.sql("SELECT GROUP_CONCAT(v ORDER BY id) FROM " + db + "_copy.t; SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '" + db + "_copy'"); got != "one,two\nlatin1" {
		t.Errorf("copy: %q", got)
	}
	s.sql("INSERT INTO " + db + ".t VALUES (3, 'three');")
	lo.Databases, lo.Overwrite, lo.Globals = nil, true, false
	if _, err := Load(context.Background(), dir, m, lo); err != nil {
		t.Fatal(err)
	}
	if got := s.sql("SELECT COUNT(*) FROM " + db + ".t"); got != "2" {
		t.Errorf("rows after overwrite: %s", got)
	}
}

func TestBackupFailures(t *testing.T) {
	s := requireServer(t)
	wrong := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrong, []byte("not-the-password\n"), 0o600)
	for _, tc := range []struct {
		name string
		spec v1.MySQLSource
		want string
	}{
		{"wrong password", v1.MySQLSource{Host: s.Host, Port: s.Port, User: s.User, PasswordFile: wrong},
			"ERROR 1045 (28000): Access denied for user 'aegis'@'127.0.0.1' (using password: YES)"},
		{"server down", v1.MySQLSource{Host: "127.0.0.1", Port: 1, User: s.User, PasswordFile: s.PasswordFile},
			"Can't connect to server on '127.0.0.1'"},
		{"missing database", s.spec("aegis_no_such_db"), `database "aegis_no_such_db" does not exist on the server`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.spec, Options{}).Backup(context.Background(), &memWriter{objects: map[string][]byte{}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "not-the-password") {
				t.Error("the error holds the password")
			}
		})
	}
}

func TestDefaultsFileQuoting(t *testing.T) {
	s := requireServer(t)
	user := fmt.Sprintf("aegis_q_%d", os.Getpid())
	pw := `a"b\c #d 'e ` // quotes, a backslash, a comment sign, spaces
	s.sql(fmt.Sprintf("CREATE OR REPLACE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s';", user, strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw)))
	t.Cleanup(func() { s.sql(fmt.Sprintf("DROP USER IF EXISTS '%s'@'127.0.0.1';", user)) })
	file := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(file, []byte(pw+"\n"), 0o600)
	c, err := newConn(s.Host, s.Port, "", user, file)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	fi, err := os.Stat(strings.TrimPrefix(c.first[0], "--defaults-file="))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("defaults file: %v %v", fi, err)
	}
	for _, a := range append(c.first, c.args...) {
		if strings.Contains(a, "#d") {
			t.Errorf("the password is on the command line: %q", a)
		}
	}
	rows, err := c.query(context.Background(), "mariadb", "SELECT CURRENT_USER()")
	if err != nil || len(rows) != 1 || rows[0][0] != user+"@127.0.0.1" {
		t.Errorf("login with a quoted password: %v %v", rows, err)
	}
}

func TestBackupOverSocket(t *testing.T) {
	s := requireServer(t)
	db := fmt.Sprintf("aegis_sock_%d", os.Getpid())
	s.sql("DROP DATABASE IF EXISTS " + db + "; CREATE DATABASE " + db + "; CREATE TABLE " + db + ".t (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO " + db + ".t VALUES (42);")
	t.Cleanup(func() { s.sql("DROP DATABASE IF EXISTS " + db) })
	w := &memWriter{objects: map[string][]byte{}}
	_, err := New(v1.MySQLSource{Socket: s.Socket, User: s.User, PasswordFile: s.PasswordFile, Databases: []string{db}}, Options{}).Backup(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(w.objects[db+".sql"], []byte("(42)")) {
		t.Errorf("dump over the socket lacks the row")
	}
}
