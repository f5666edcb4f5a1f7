package postgres

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/internal/dbtest"
	"github.com/aegis-backup/aegis/drivers/internal/dumptool"
)

func TestVersionNum(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"15.18", 150018},
		{"9.6.24", 90624},
		{"17beta1", 170000},
		{"10.0", 100000},
		{"16", 160000},
	} {
		if got := versionNum(tc.in); got != tc.want {
			t.Errorf("versionNum(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
	v, n, err := toolVersion("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n")
	if err != nil || v != "15.18" || n != 150018 {
		t.Errorf("toolVersion = %q, %d, %v", v, n, err)
	}
	if majorOf(90624) != 906 || majorOf(150018) != 1500 || majorString(90624) != "9.6" || majorString(160002) != "16" {
		t.Error("majorOf/majorString")
	}
}

func TestConninfoDB(t *testing.T) {
	if got, want := conninfoDB(`a'b\c=d`), `dbname='a\'b\\c=d'`; got != want {
		t.Errorf("conninfoDB = %s, want %s", got, want)
	}
}

// memWriter is an ObjectWriter that keeps objects in memory.
type memWriter struct {
	mu      sync.Mutex
	objects map[string][]byte
	formats map[string]string
	order   []string
}

func newMemWriter() *memWriter {
	return &memWriter{objects: map[string][]byte{}, formats: map[string]string{}}
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
	m.formats[name] = format
	m.order = append(m.order, name)
	return &memObject{w: m, name: name}, nil
}

// server is the test server of hack/server-postgres.sh.
type testServer struct {
	t *testing.T
	dbtest.Server
}

func requireServer(t *testing.T) *testServer {
	t.Helper()
	return &testServer{t: t, Server: dbtest.Require(t, "PostgreSQL server", "AEGIS_TEST_PG_", "SOCKET_DIR")}
}

// psql runs sql as the superuser on db and returns the output (-A -t).
func (s *testServer) psql(db, sql string) string {
	s.t.Helper()
	pw, err := dumptool.ReadSecret(s.PasswordFile)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command("psql", "-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", s.Host, "-p", strconv.Itoa(s.Port), "-U", s.User, "-d", db)
	cmd.Stdin = strings.NewReader(sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+pw)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("psql %s: %v\n%s\n%s", db, err, sql, out)
	}
	return strings.TrimSpace(string(out))
}

func (s *testServer) spec(dbs ...string) v1.PostgresSource {
	return v1.PostgresSource{Host: s.Host, Port: s.Port, User: s.User, PasswordFile: s.PasswordFile, Databases: dbs}
}

// uniqueName returns a database or role name of this test process, so
// that runs on the same server do not meet.
func uniqueName(t *testing.T, prefix string) string {
	return fmt.Sprintf("%s_%d", prefix, os.Getpid())
}

func TestBackupDumpsGlobalsAndDatabases(t *testing.T) {
	s := requireServer(t)
	db := uniqueName(t, "aegis_drv")
	s.psql("postgres", "DROP DATABASE IF EXISTS "+db+"; CREATE DATABASE "+db+";")
	t.Cleanup(func() { s.psql("postgres", "DROP DATABASE IF EXISTS "+db+";") })
	s.psql(db, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 1000) g;")

	w := newMemWriter()
	stats, err := New(s.spec(db), Options{}).Backup(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(w.order, " "), GlobalsObject+" "+db+".pgdump"; got != want {
		t.Errorf("objects %q, want %q", got, want)
	}
	if w.formats[db+".pgdump"] != DumpFormat || w.formats[GlobalsObject] != GlobalsFormat {
		t.Errorf("formats %v", w.formats)
	}
	dump := w.objects[db+".pgdump"]
	if !bytes.HasPrefix(dump, []byte("PGDMP")) {
		t.Fatalf("dump does not start with the custom format's magic: %q", dump[:min(16, len(dump))])
	}
	if !bytes.Contains(w.objects[GlobalsObject], []byte("CREATE ROLE postgres")) {
		t.Errorf("globals lack the postgres role:\n%s", w.objects[GlobalsObject])
	}
	if stats.Meta[MetaDatabases] != db || !strings.HasPrefix(stats.Meta[MetaServerVersion], "1") || stats.Meta[MetaGlobals] != "included" {
		t.Errorf("meta %v", stats.Meta)
	}
	if want := int64(len(dump) + len(w.objects[GlobalsObject])); stats.BytesRead != want {
		t.Errorf("BytesRead %d, want %d", stats.BytesRead, want)
	}
	// pg_restore reads it: the table and its data are listed.
	f := filepath.Join(t.TempDir(), "x.pgdump")
	os.WriteFile(f, dump, 0o600)
	out, err := exec.Command("pg_restore", "--list", f).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "TABLE DATA public t") {
		t.Errorf("pg_restore --list: %v\n%s", err, out)
	}
	// Uncompressed, as asked: the rows are readable in the raw dump.
	if !bytes.Contains(dump, []byte("row 999")) {
		t.Error("the dump is compressed; the pipeline compresses, pg_dump must not")
	}
}

func TestBackupFailures(t *testing.T) {
	s := requireServer(t)
	ctx := context.Background()
	wrong := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrong, []byte("not-the-password\n"), 0o600)
	open := filepath.Join(t.TempDir(), "open")
	os.WriteFile(open, []byte("x\n"), 0o644)

	for _, tc := range []struct {
		name string
		spec v1.PostgresSource
		want string
	}{
		{"wrong password", v1.PostgresSource{Host: s.Host, Port: s.Port, User: s.User, PasswordFile: wrong},
			`psql failed (exit status 2): psql: error: connection to server at "127.0.0.1", port ` + strconv.Itoa(s.Port) + ` failed: FATAL:  password authentication failed for user "postgres"`},
		{"server down", v1.PostgresSource{Host: "127.0.0.1", Port: 1, User: s.User, PasswordFile: s.PasswordFile},
			`connection to server at "127.0.0.1", port 1 failed: Connection refused`},
		{"missing database first", s.spec("aegis_no_such_db"),
			`FATAL:  database "aegis_no_such_db" does not exist`},
		{"missing database later", s.spec("postgres", "aegis_no_such_db"),
			`database "aegis_no_such_db" does not exist on the server`},
		{"open password file", v1.PostgresSource{Host: s.Host, Port: s.Port, User: s.User, PasswordFile: open},
			"is readable or writable by group or others"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newMemWriter()
			_, err := New(tc.spec, Options{}).Backup(ctx, w)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "not-the-password") {
				t.Error("the error holds the password")
			}
		})
	}
}

// fakeTools makes a PATH of symlinks to the real client tools, with some
// replaced by scripts.
func fakeTools(t *testing.T, scripts map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for _, tool := range []string{"psql", "pg_dump", "pg_dumpall", "pg_restore"} {
		if body, ok := scripts[tool]; ok {
			if body != "" {
				os.WriteFile(filepath.Join(dir, tool), []byte("#!/bin/sh\n"+body), 0o755)
			}
			continue
		}
		real, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s: %v", tool, err)
		}
		os.Symlink(real, filepath.Join(dir, tool))
	}
	return dir
}

func TestBackupToolProblems(t *testing.T) {
	s := requireServer(t)
	for _, tc := range []struct {
		name    string
		scripts map[string]string
		want    string
	}{
		{"pg_dump older than the server", map[string]string{"pg_dump": `echo "pg_dump (PostgreSQL) 9.6.24"` + "\n"},
			"pg_dump 9.6.24 (" /* path */},
		{"pg_dump missing", map[string]string{"pg_dump": ""}, "pg_dump not found on PATH"},
		{"pg_dump fails halfway", map[string]string{"pg_dump": `case "$1" in --version) echo "pg_dump (PostgreSQL) 99.0";; *) /usr/bin/head -c 100000 /dev/zero; echo "pg_dump: error: query failed: server closed the connection unexpectedly" >&2; exit 1;; esac` + "\n"},
			"pg_dump failed (exit status 1): pg_dump: error: query failed: server closed the connection unexpectedly"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PATH", fakeTools(t, tc.scripts))
			w := newMemWriter()
			_, err := New(s.spec("postgres"), Options{}).Backup(context.Background(), w)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if tc.name == "pg_dump older than the server" {
				if !strings.Contains(err.Error(), "is older than the server, PostgreSQL 1") || !drivers.IsPermanent(err) {
					t.Errorf("error %v", err)
				}
			}
		})
	}
}

func TestBackupAsNonSuperuser(t *testing.T) {
	s := requireServer(t)
	role := uniqueName(t, "aegis_plain")
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("plain-secret\n"), 0o600)
	s.psql("postgres", fmt.Sprintf("DROP DATABASE IF EXISTS %[1]s; DROP ROLE IF EXISTS %[1]s; CREATE ROLE %[1]s LOGIN PASSWORD 'plain-secret'; CREATE DATABASE %[1]s OWNER %[1]s;", role))
	t.Cleanup(func() {
		s.psql("postgres", fmt.Sprintf("DROP DATABASE IF EXISTS %[1]s; DROP ROLE IF EXISTS %[1]s;", role))
	})

	w := newMemWriter()
	stats, err := New(v1.PostgresSource{Host: s.Socket, Port: s.Port, User: role, PasswordFile: pw, Databases: []string{role}}, Options{}).Backup(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Meta[MetaGlobals] != "included without role passwords" || len(stats.Warnings) == 0 || !strings.Contains(stats.Warnings[0], "not a superuser") {
		t.Errorf("meta %v, warnings %v", stats.Meta, stats.Warnings)
	}
	if !bytes.Contains(w.objects[GlobalsObject], []byte("CREATE ROLE "+role)) {
		t.Errorf("globals lack the role:\n%s", w.objects[GlobalsObject])
	}
}

func TestLoadRefusesDatabaseWithTables(t *testing.T) {
	s := requireServer(t)
	db := uniqueName(t, "aegis_load")
	s.psql("postgres", "DROP DATABASE IF EXISTS "+db+"; CREATE DATABASE "+db+";")
	t.Cleanup(func() {
		s.psql("postgres", "DROP DATABASE IF EXISTS "+db+"; DROP DATABASE IF EXISTS "+db+"_copy;")
	})
	s.psql(db, "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);")
	w := newMemWriter()
	if _, err := New(s.spec(db), Options{}).Backup(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m := &v1.SnapshotManifest{ID: "x", Source: "pg", SourceKind: "postgres", Meta: map[string]string{MetaDatabases: db}}
	for _, name := range w.order {
		os.WriteFile(filepath.Join(dir, name), w.objects[name], 0o600)
		m.Objects = append(m.Objects, v1.SnapshotObject{Name: name, Format: w.formats[name]})
	}
	lo := LoadOptions{Host: s.Host, Port: s.Port, User: s.User, PasswordFile: s.PasswordFile}

	_, err := Load(context.Background(), dir, m, lo)
	if err == nil || !strings.Contains(err.Error(), `database "`+db+`" on the server already has 1 tables`) {
		t.Fatalf("load over a database with tables: %v", err)
	}
	// Under another name it loads; then with --overwrite over itself.
	lo.Databases = map[string]string{db: db + "_copy"}
	if _, err := Load(context.Background(), dir, m, lo); err != nil {
		t.Fatal(err)
	}
	if got := s.psql(db+"_copy", "SELECT count(*) FROM t"); got != "2" {
		t.Errorf("rows in the copy: %s", got)
	}
	s.psql(db, "INSERT INTO t VALUES (3);")
	lo.Databases, lo.Overwrite = nil, true
	if _, err := Load(context.Background(), dir, m, lo); err != nil {
		t.Fatal(err)
	}
	if got := s.psql(db, "SELECT count(*) FROM t"); got != "2" {
		t.Errorf("rows after overwrite: %s", got)
	}
	lo.Databases = map[string]string{"nope": "x"}
	if _, err := Load(context.Background(), dir, m, lo); err == nil || !strings.Contains(err.Error(), `holds no dump of database "nope"`) {
		t.Errorf("unknown database: %v", err)
	}
}
