// Package postgres backs up PostgreSQL databases with the server's own
// tools, and loads such backups into a server again.
//
// Each database becomes one data object NAME.pgdump, the stream of
// `pg_dump -Fc -Z0` (the custom format, uncompressed, since the pipeline
// compresses), which `pg_restore` reads. Roles and tablespaces, with
// globals on, become the object _globals.sql, the SQL of `pg_dumpall
// --globals-only`, which `psql` reads. Nothing is staged on disk.
//
// The password, when the source names a file, reaches the tools through
// the environment (PGPASSWORD), never the command line. The tools are the
// pg_dump, pg_dumpall and psql found on PATH; a pg_dump older than the
// server, which cannot dump it, is refused before anything is written.
package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/internal/dumptool"
)

// Object names and formats.
const (
	DumpExt       = ".pgdump"
	DumpFormat    = "pgdump"
	GlobalsObject = "_globals.sql"
	GlobalsFormat = "sql"
)

// Meta keys recorded in the snapshot manifest.
const (
	MetaServerVersion = "serverVersion"
	MetaDumpVersion   = "pgDumpVersion"
	MetaDatabases     = "databases"
	MetaGlobals       = "globals"
)

// Options tunes the driver. The zero value is ready to use.
type Options struct {
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
}

// Source dumps the databases of a PostgresSource.
type Source struct {
	spec v1.PostgresSource
	opts Options
}

// New returns a Source for spec.
func New(spec v1.PostgresSource, opts Options) *Source {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Source{spec: spec, opts: opts}
}

// conn is how the tools reach the server: libpq's environment.
type conn struct {
	env []string
	// db is the database the driver's own queries connect to.
	db string
}

func newConn(host string, port int, user, passwordFile string) (*conn, error) {
	env := []string{"PGAPPNAME=aegis-agent", "PGCONNECT_TIMEOUT=30"}
	if host != "" {
		env = append(env, "PGHOST="+host)
	}
	if port != 0 {
		env = append(env, "PGPORT="+strconv.Itoa(port))
	}
	if user != "" {
		env = append(env, "PGUSER="+user)
	}
	if passwordFile != "" {
		pw, err := dumptool.ReadSecret(passwordFile)
		if err != nil {
			return nil, drivers.Permanent(err)
		}
		env = append(env, "PGPASSWORD="+pw)
	}
	// Without a password file, ~/.pgpass, PGPASSWORD and peer or trust
	// authentication apply, as for any libpq client.
	return &conn{env: env}, nil
}

// cmd is a run of tool against database db ("" for the tool's default).
func (c *conn) cmd(tool, db string, args ...string) dumptool.Cmd {
	env := c.env
	if db != "" {
		env = append(env[:len(env):len(env)], "PGDATABASE="+db)
	}
	return dumptool.Cmd{Path: tool, Args: args, Env: env}
}

// query runs sql with psql on database db and returns its rows, each a list
// of fields. Fields and rows are separated by NUL bytes, so that no value
// can be mistaken for a separator.
func (c *conn) query(ctx context.Context, psql, db, sql string, fields int) ([][]string, error) {
	out, _, err := dumptool.Output(ctx, c.cmd(psql, db, "-X", "-w", "-q", "-A", "-t", "-z", "-0", "-v", "ON_ERROR_STOP=1", "-c", sql), 16<<20)
	if err != nil {
		return nil, err
	}
	out = bytes.TrimSuffix(out, []byte{0})
	if len(out) == 0 {
		return nil, nil
	}
	vals := strings.Split(string(out), "\x00")
	if len(vals)%fields != 0 {
		return nil, fmt.Errorf("psql: unexpected output for %q", sql)
	}
	var rows [][]string
	for i := 0; i < len(vals); i += fields {
		rows = append(rows, vals[i:i+fields])
	}
	return rows, nil
}

// server is what the driver learns of the server before dumping.
type server struct {
	version    string // "15.18 (Debian 15.18-0+deb12u1)"
	versionNum int    // 150018
	superuser  bool
	databases  []string // that allow connections, templates left out
}

// inspect connects to the first database that answers among candidates
// and reads the server's facts. The error of the first candidate is the
// one reported, since it is the one the user named.
func (c *conn) inspect(ctx context.Context, psql string, candidates []string) (*server, error) {
	var first error
	for _, db := range candidates {
		rows, err := c.query(ctx, psql, db, `SELECT current_setting('server_version'), current_setting('server_version_num'), `+
			`(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)`, 3)
		if err != nil {
			if first == nil {
				first = err
			}
			if strings.Contains(err.Error(), "does not exist") {
				continue
			}
			return nil, first
		}
		if len(rows) != 1 {
			return nil, errors.New("psql: no answer to the server version query")
		}
		s := &server{version: rows[0][0], superuser: rows[0][2] == "t"}
		if s.versionNum, err = strconv.Atoi(rows[0][1]); err != nil {
			return nil, fmt.Errorf("server_version_num %q: %w", rows[0][1], err)
		}
		dbs, err := c.query(ctx, psql, db, `SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname`, 1)
		if err != nil {
			return nil, err
		}
		for _, r := range dbs {
			s.databases = append(s.databases, r[0])
		}
		c.db = db
		return s, nil
	}
	return nil, first
}

// majorOf returns a comparable major version of a server_version_num
// style number: 150018 → 1500 (15), 90624 → 906 (9.6).
func majorOf(num int) int {
	if num >= 100000 {
		return num / 10000 * 100
	}
	return num / 100
}

func majorString(num int) string {
	if num >= 100000 {
		return strconv.Itoa(num / 10000)
	}
	return fmt.Sprintf("%d.%d", num/10000, num/100%100)
}

// toolVersion parses "pg_dump (PostgreSQL) 15.18 (Debian ...)" into its
// version text and number (150018).
func toolVersion(out string) (string, int, error) {
	f := strings.Fields(out)
	for i, w := range f {
		if w == "(PostgreSQL)" && i+1 < len(f) {
			v := f[i+1]
			return v, versionNum(v), nil
		}
	}
	return "", 0, fmt.Errorf("cannot read the version in %q", strings.TrimSpace(out))
}

// versionNum turns "15.18", "9.6.24" or "17beta1" into 150018, 90624 or
// 170000.
func versionNum(v string) int {
	var parts []int
	for p := range strings.SplitSeq(v, ".") {
		end := 0
		for end < len(p) && p[end] >= '0' && p[end] <= '9' {
			end++
		}
		n, _ := strconv.Atoi(p[:end])
		parts = append(parts, n)
		if end < len(p) {
			break // "17beta1": what follows is not a number
		}
	}
	for len(parts) < 3 {
		parts = append(parts, 0)
	}
	if parts[0] >= 10 {
		return parts[0]*10000 + parts[1]
	}
	return parts[0]*10000 + parts[1]*100 + parts[2]
}

// Backup dumps the globals (unless spec.Globals is false) and then every
// database of spec.Databases (all that allow connections when empty), one
// object each, and records the server version and the databases in the
// stats' Meta. A database that does not exist, a tool that is missing or
// fails, or a pg_dump older than the server fails the backup with the
// tool's own error text.
func (s *Source) Backup(ctx context.Context, out drivers.ObjectWriter) (drivers.SourceStats, error) {
	var stats drivers.SourceStats
	c, err := newConn(s.spec.Host, s.spec.Port, s.spec.User, s.spec.PasswordFile)
	if err != nil {
		return stats, err
	}
	globals := s.spec.Globals == nil || *s.spec.Globals
	psql, pgDump, pgDumpAll, err := backupTools(globals)
	if err != nil {
		return stats, err
	}

	candidates := []string{"postgres", "template1"}
	if len(s.spec.Databases) > 0 {
		candidates = []string{s.spec.Databases[0]}
	}
	srv, err := c.inspect(ctx, psql, candidates)
	if err != nil {
		return stats, err
	}
	dumpVer, err := c.checkDumpVersion(ctx, pgDump, srv)
	if err != nil {
		return stats, err
	}
	dbs, err := s.databases(srv)
	if err != nil {
		return stats, err
	}
	stats.Meta = map[string]string{
		MetaServerVersion: srv.version,
		MetaDumpVersion:   dumpVer,
		MetaDatabases:     strings.Join(dbs, ","),
		MetaGlobals:       "not included",
	}
	s.opts.Logger.Debug("postgres: server inspected", "version", srv.version, "superuser", srv.superuser, "databases", dbs)

	if globals {
		if err := s.dumpGlobals(ctx, out, c, pgDumpAll, srv, &stats); err != nil {
			return stats, err
		}
	}
	for _, db := range dbs {
		if err := s.dumpDatabase(ctx, out, c, pgDump, db, &stats); err != nil {
			return stats, err
		}
	}
	return stats, nil
}

// backupTools finds psql, pg_dump and, when globals are wanted, pg_dumpall
// ("" otherwise). A missing tool is a permanent error that says what to
// install, since no retry will bring it.
func backupTools(globals bool) (psql, pgDump, pgDumpAll string, err error) {
	if psql, err = dumptool.Find("psql"); err != nil {
		return "", "", "", drivers.Permanent(fmt.Errorf("%w (install the PostgreSQL client tools, e.g. Debian's postgresql-client)", err))
	}
	if pgDump, err = dumptool.Find("pg_dump"); err != nil {
		return "", "", "", drivers.Permanent(fmt.Errorf("%w (install the PostgreSQL client tools, e.g. Debian's postgresql-client)", err))
	}
	if globals {
		if pgDumpAll, err = dumptool.Find("pg_dumpall"); err != nil {
			return "", "", "", drivers.Permanent(fmt.Errorf("%w (install the PostgreSQL client tools, or set globals: false)", err))
		}
	}
	return psql, pgDump, pgDumpAll, nil
}

// checkDumpVersion returns pg_dump's version, refusing one of an older
// major version than the server: it would fail on the first database, so
// the backup stops before anything is written, with the fix in the error.
func (c *conn) checkDumpVersion(ctx context.Context, pgDump string, srv *server) (string, error) {
	verOut, _, err := dumptool.Output(ctx, c.cmd(pgDump, "", "--version"), 4096)
	if err != nil {
		return "", err
	}
	dumpVer, dumpNum, err := toolVersion(string(verOut))
	if err != nil {
		return "", err
	}
	if majorOf(dumpNum) < majorOf(srv.versionNum) {
		return "", drivers.Permanent(fmt.Errorf(
			"pg_dump %s (%s) is older than the server, PostgreSQL %s: pg_dump cannot dump a newer server; install the PostgreSQL %s client tools (Debian: postgresql-client-%s) and put their pg_dump first on PATH",
			dumpVer, pgDump, srv.version, majorString(srv.versionNum), majorString(srv.versionNum)))
	}
	return dumpVer, nil
}

// databases picks the databases to dump: those spec.Databases names, or
// all that allow connections when it names none. A named database the
// server lacks is a permanent error that lists what the server has, since
// retrying cannot make it appear.
func (s *Source) databases(srv *server) ([]string, error) {
	dbs := s.spec.Databases
	if len(dbs) == 0 {
		return srv.databases, nil
	}
	for _, db := range dbs {
		if !slices.Contains(srv.databases, db) {
			return nil, drivers.Permanent(fmt.Errorf("database %q does not exist on the server (or does not allow connections); it has: %s", db, strings.Join(srv.databases, ", ")))
		}
	}
	return dbs, nil
}

// dumpGlobals dumps roles and tablespaces into GlobalsObject and records in
// stats what was included: without superuser rights the role passwords
// cannot be read, which a restore must be told about.
func (s *Source) dumpGlobals(ctx context.Context, out drivers.ObjectWriter, c *conn, pgDumpAll string, srv *server, stats *drivers.SourceStats) error {
	args := []string{"--globals-only", "--no-password"}
	if !srv.superuser {
		// pg_authid, where the password hashes are, is for superusers
		// only; pg_roles has the rest.
		args = append(args, "--no-role-passwords")
		stats.Warnings = append(stats.Warnings, "the user is not a superuser: roles are dumped without their passwords")
	}
	if usableAsDBName(c.db) {
		args = append(args, "--database="+c.db)
	}
	n, warn, err := s.dumpObject(ctx, out, GlobalsObject, GlobalsFormat, c.cmd(pgDumpAll, "", args...))
	stats.BytesRead += n
	stats.Warnings = append(stats.Warnings, warn...)
	if err != nil {
		return err
	}
	stats.Meta[MetaGlobals] = "included"
	if !srv.superuser {
		stats.Meta[MetaGlobals] = "included without role passwords"
	}
	return nil
}

// dumpDatabase dumps database db into its object and adds the bytes and
// warnings to stats, also when the dump fails, so that the stats of a
// failed backup still say how far it got.
func (s *Source) dumpDatabase(ctx context.Context, out drivers.ObjectWriter, c *conn, pgDump, db string, stats *drivers.SourceStats) error {
	t0 := time.Now()
	n, warn, err := s.dumpObject(ctx, out, dumptool.ObjectName(db, DumpExt), DumpFormat,
		c.cmd(pgDump, db, "--format=custom", "--compress=0", "--no-password"))
	stats.BytesRead += n
	stats.Warnings = append(stats.Warnings, warn...)
	if err != nil {
		return fmt.Errorf("dump database %s: %w", db, err)
	}
	s.opts.Logger.Info("postgres: database dumped", "database", db, "bytes", n, "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// dumpObject streams one tool's output into the object name.
func (s *Source) dumpObject(ctx context.Context, out drivers.ObjectWriter, name, format string, cmd dumptool.Cmd) (int64, []string, error) {
	w, err := out.Create(ctx, name, format)
	if err != nil {
		return 0, nil, fmt.Errorf("create %s: %w", name, err)
	}
	n, stderr, err := dumptool.Stream(ctx, cmd, w)
	if err != nil {
		dumptool.Abort(w, err)
		return n, nil, err
	}
	if err := w.Close(); err != nil {
		return n, nil, fmt.Errorf("close %s: %w", name, err)
	}
	return n, prefixed(cmd.Name(), dumptool.Lines(stderr)), nil
}

func prefixed(tool string, lines []string) []string {
	for i, l := range lines {
		if !strings.HasPrefix(l, tool+":") {
			lines[i] = tool + ": " + l
		}
	}
	return lines
}

// usableAsDBName reports whether name can be given to pg_dumpall's
// --database, which libpq would read as a connection string if it held
// "=" or started like a URI.
func usableAsDBName(name string) bool {
	return name != "" && !strings.Contains(name, "=") && !strings.HasPrefix(name, "postgres://") && !strings.HasPrefix(name, "postgresql://")
}

var _ drivers.Source = (*Source)(nil)

// Check proves the server accepts the login: it connects as a backup would
// and reads the server's version and databases. The guided setup calls it
// while the user answers.
func (s *Source) Check(ctx context.Context) error {
	c, err := newConn(s.spec.Host, s.spec.Port, s.spec.User, s.spec.PasswordFile)
	if err != nil {
		return err
	}
	psql, err := dumptool.Find("psql")
	if err != nil {
		return drivers.Permanent(fmt.Errorf("%w (install the PostgreSQL client tools, e.g. Debian's postgresql-client)", err))
	}
	candidates := []string{"postgres", "template1"}
	if len(s.spec.Databases) > 0 {
		candidates = []string{s.spec.Databases[0]}
	}
	_, err = c.inspect(ctx, psql, candidates)
	return err
}
