// Package mysql backs up MySQL and MariaDB databases with the server's own
// dump tool, and loads such backups into a server again.
//
// Each database becomes one data object NAME.sql: the SQL of mariadb-dump
// (or mysqldump, whichever is on PATH) for that database, taken in one
// transaction (--single-transaction) so that InnoDB tables are consistent
// with each other, with routines, triggers and events, and without a
// CREATE DATABASE or USE statement, so that it loads under any name:
//
//	mariadb -e 'CREATE DATABASE app'; mariadb app < app.sql
//
// Users and grants, when the tool and the server can (MariaDB's
// --system=users) and the user may read them, become _users.sql. Nothing is
// staged on disk.
//
// The password reaches the tools through a defaults file of mode 0600 in a
// private temporary directory, removed when the tool is done; then the tools
// read that file only (--defaults-file), not /etc/mysql/my.cnf or ~/.my.cnf.
// Without a password file the standard option files apply.
package mysql

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
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
	DumpExt     = ".sql"
	DumpFormat  = "sql"
	UsersObject = "_users.sql"
)

// Meta keys recorded in the snapshot manifest. The character set and
// collation of database DB are under "charset.DB" and "collation.DB".
const (
	MetaServerVersion = "serverVersion"
	MetaDumpTool      = "dumpTool"
	MetaDatabases     = "databases"
	MetaUsers         = "users"
	metaCharset       = "charset."
	metaCollation     = "collation."
)

// systemSchemas are left out when a source names no databases.
var systemSchemas = []string{"information_schema", "performance_schema", "sys", "mysql"}

// Options tunes the driver. The zero value is ready to use.
type Options struct {
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
}

// Source dumps the databases of a MySQLSource.
type Source struct {
	spec v1.MySQLSource
	opts Options
}

// New returns a Source for spec.
func New(spec v1.MySQLSource, opts Options) *Source {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Source{spec: spec, opts: opts}
}

// conn is how the tools reach the server.
type conn struct {
	// first holds the defaults-file argument, which must come first.
	first []string
	args  []string
	dir   string // the private directory of the defaults file
}

// newConn writes the defaults file, when there is a password; close
// removes it.
func newConn(host string, port int, socket, user, passwordFile string) (*conn, error) {
	c := &conn{}
	if passwordFile != "" {
		pw, err := dumptool.ReadSecret(passwordFile)
		if err != nil {
			return nil, drivers.Permanent(err)
		}
		dir, err := os.MkdirTemp("", "aegis-mysql-")
		if err != nil {
			return nil, err
		}
		c.dir = dir
		file := filepath.Join(dir, "client.cnf")
		body := "[client]\npassword=\"" + optionEscaper.Replace(pw) + "\"\n"
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			c.close()
			return nil, err
		}
		c.first = []string{"--defaults-file=" + file}
	}
	switch {
	case socket != "":
		c.args = append(c.args, "--protocol=SOCKET", "--socket="+socket)
	case host != "":
		c.args = append(c.args, "--host="+host)
		if port != 0 {
			c.args = append(c.args, "--protocol=TCP")
		}
	}
	if port != 0 {
		c.args = append(c.args, "--port="+strconv.Itoa(port))
	}
	if user != "" {
		c.args = append(c.args, "--user="+user)
	}
	return c, nil
}

// optionEscaper escapes a value for a double-quoted option file value.
var optionEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

func (c *conn) close() {
	if c.dir != "" {
		os.RemoveAll(c.dir)
	}
}

func (c *conn) cmd(tool string, args ...string) dumptool.Cmd {
	all := append(append(append([]string{}, c.first...), c.args...), args...)
	return dumptool.Cmd{Path: tool, Args: all}
}

// query runs sql with the client and returns its rows, tab-separated
// fields. Callers select names as HEX() so that no value holds a tab or a
// line break.
func (c *conn) query(ctx context.Context, client, sql string) ([][]string, error) {
	out, _, err := dumptool.Output(ctx, c.cmd(client, "--batch", "--skip-column-names", "--execute="+sql), 16<<20)
	if err != nil {
		return nil, err
	}
	var rows [][]string
	for line := range strings.SplitSeq(strings.TrimRight(string(out), "\n"), "\n") {
		if line != "" {
			rows = append(rows, strings.Split(line, "\t"))
		}
	}
	return rows, nil
}

func unhex(s string) (string, error) {
	b, err := hex.DecodeString(s)
	return string(b), err
}

// hexLiteral writes s as a utf8mb4 string literal that needs no escaping.
func hexLiteral(s string) string {
	if s == "" {
		return "''"
	}
	return "_utf8mb4 X'" + hex.EncodeToString([]byte(s)) + "'"
}

// quoteIdent quotes a name as a MySQL identifier.
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// schema is one database on the server.
type schema struct {
	name, charset, collation string
}

type server struct {
	version string
	mariadb bool
	schemas []schema
}

func (c *conn) inspect(ctx context.Context, client string) (*server, error) {
	rows, err := c.query(ctx, client, "SELECT HEX(VERSION()), HEX(@@version_comment)")
	if err != nil {
		return nil, err
	}
	if len(rows) != 1 || len(rows[0]) != 2 {
		return nil, errors.New("no answer to SELECT VERSION()")
	}
	s := &server{}
	s.version, _ = unhex(rows[0][0])
	comment, _ := unhex(rows[0][1])
	s.mariadb = strings.Contains(s.version, "MariaDB") || strings.Contains(comment, "MariaDB")
	rows, err = c.query(ctx, client, "SELECT HEX(SCHEMA_NAME), DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if len(r) != 3 {
			return nil, fmt.Errorf("unexpected answer listing databases: %q", r)
		}
		name, err := unhex(r[0])
		if err != nil {
			return nil, err
		}
		s.schemas = append(s.schemas, schema{name: name, charset: r[1], collation: r[2]})
	}
	return s, nil
}

func (s *server) schema(name string) (schema, bool) {
	for _, sc := range s.schemas {
		if sc.name == name {
			return sc, true
		}
	}
	return schema{}, false
}

// tools finds the client and the dump tool: MariaDB's names first.
func tools() (client, dump string, err error) {
	if client, err = dumptool.Find("mariadb", "mysql"); err != nil {
		return "", "", drivers.Permanent(fmt.Errorf("%w (install mariadb-client or mysql-client)", err))
	}
	if dump, err = dumptool.Find("mariadb-dump", "mysqldump"); err != nil {
		return "", "", drivers.Permanent(fmt.Errorf("%w (install mariadb-client or mysql-client)", err))
	}
	return client, dump, nil
}

// Backup dumps every database of spec.Databases (all but the system
// schemas when empty), one object each, then the users and grants when it
// can, and records the server version and the databases in the stats'
// Meta. A database that does not exist, a tool that is missing or fails
// fails the backup with the tool's own error text. Tables of engines
// without transactions (MyISAM, Aria) are named in a warning: a single
// transaction does not make their dump consistent.
func (s *Source) Backup(ctx context.Context, out drivers.ObjectWriter) (drivers.SourceStats, error) {
	var stats drivers.SourceStats
	client, dump, err := tools()
	if err != nil {
		return stats, err
	}
	c, err := newConn(s.spec.Host, s.spec.Port, s.spec.Socket, s.spec.User, s.spec.PasswordFile)
	if err != nil {
		return stats, err
	}
	defer c.close()

	srv, err := c.inspect(ctx, client)
	if err != nil {
		return stats, err
	}
	toolVersion, err := dumpToolVersion(ctx, dump)
	if err != nil {
		return stats, err
	}
	mariadbTool := strings.Contains(toolVersion, "MariaDB")

	dbs, err := s.databases(srv)
	if err != nil {
		return stats, err
	}
	dbNames := schemaNames(dbs)
	stats.Meta = backupMeta(srv, toolVersion, dbs)
	if w, err := c.nonTransactional(ctx, client, dbNames); err != nil {
		return stats, err
	} else {
		stats.Warnings = append(stats.Warnings, w...)
	}

	args := dumpArgs(mariadbTool, srv.mariadb)
	for _, d := range dbs {
		if err := s.dumpDatabase(ctx, out, c, dump, args, d, &stats); err != nil {
			return stats, err
		}
	}
	return stats, c.dumpUsers(ctx, out, client, dump, srv, mariadbTool, &stats)
}

// dumpToolVersion asks the dump tool for its version line, which goes into
// the manifest and tells MariaDB's tool from Oracle's: their options differ.
func dumpToolVersion(ctx context.Context, dump string) (string, error) {
	verOut, _, err := dumptool.Output(ctx, dumptool.Cmd{Path: dump, Args: []string{"--version"}}, 4096)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(verOut)), nil
}

// databases picks the schemas of srv to dump: those spec.Databases names,
// in its order, or all but the system schemas when it names none. A named
// database the server lacks is a permanent error that lists what the server
// has, since retrying cannot make it appear.
func (s *Source) databases(srv *server) ([]schema, error) {
	var dbs []schema
	if len(s.spec.Databases) == 0 {
		for _, sc := range srv.schemas {
			if !slices.Contains(systemSchemas, sc.name) {
				dbs = append(dbs, sc)
			}
		}
		return dbs, nil
	}
	names := schemaNames(srv.schemas)
	for _, name := range s.spec.Databases {
		sc, ok := srv.schema(name)
		if !ok {
			return nil, drivers.Permanent(fmt.Errorf("database %q does not exist on the server (or the user may not see it); it has: %s", name, strings.Join(names, ", ")))
		}
		dbs = append(dbs, sc)
	}
	return dbs, nil
}

// schemaNames lists the names of scs, in order.
func schemaNames(scs []schema) []string {
	var names []string
	for _, sc := range scs {
		names = append(names, sc.name)
	}
	return names
}

// backupMeta records what a load needs to recreate the databases as they
// were (character set and collation) and which server and tool made them.
func backupMeta(srv *server, toolVersion string, dbs []schema) map[string]string {
	meta := map[string]string{
		MetaServerVersion: srv.version,
		MetaDumpTool:      toolVersion,
		MetaDatabases:     strings.Join(schemaNames(dbs), ","),
	}
	for _, d := range dbs {
		meta[metaCharset+d.name] = d.charset
		meta[metaCollation+d.name] = d.collation
	}
	return meta
}

// dumpArgs are the dump tool's options for one database, which depend on
// whose tool it is and whose server it talks to.
func dumpArgs(mariadbTool, mariadbServer bool) []string {
	args := []string{
		"--single-transaction", "--skip-lock-tables",
		"--routines", "--triggers", "--events",
		"--add-drop-trigger", "--hex-blob", "--no-tablespaces",
		"--default-character-set=utf8mb4", "--max-allowed-packet=1G",
	}
	if !mariadbTool {
		// Oracle's mysqldump: no GTID statements that would break a load
		// into another server, and no column statistics a MariaDB server
		// does not have.
		args = append(args, "--set-gtid-purged=OFF")
		if mariadbServer {
			args = append(args, "--column-statistics=0")
		}
	}
	return args
}

// dumpDatabase dumps database d into its object with args and adds the
// bytes and warnings to stats, also when the dump fails, so that the stats
// of a failed backup still say how far it got.
func (s *Source) dumpDatabase(ctx context.Context, out drivers.ObjectWriter, c *conn, dump string, args []string, d schema, stats *drivers.SourceStats) error {
	t0 := time.Now()
	cmd := c.cmd(dump, append(slices.Clone(args), "--", d.name)...)
	n, warn, err := dumpObject(ctx, out, dumptool.ObjectName(d.name, DumpExt), cmd)
	stats.BytesRead += n
	stats.Warnings = append(stats.Warnings, warn...)
	if err != nil {
		return fmt.Errorf("dump database %s: %w", d.name, err)
	}
	s.opts.Logger.Info("mysql: database dumped", "database", d.name, "bytes", n, "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// dumpUsers dumps the users and grants into UsersObject when the tool and
// the server allow it, and otherwise records why not, in stats.Meta and as
// a warning: a backup without them is still worth keeping, but the user
// should know a restore will not recreate the accounts.
func (c *conn) dumpUsers(ctx context.Context, out drivers.ObjectWriter, client, dump string, srv *server, mariadbTool bool, stats *drivers.SourceStats) error {
	why := c.usersUnavailable(ctx, client, srv, mariadbTool)
	if why != "" {
		stats.Meta[MetaUsers] = "not included: " + why
		stats.Warnings = append(stats.Warnings, "users and grants are not in the backup: "+why)
		return nil
	}
	cmd := c.cmd(dump, "--system=users", "--insert-ignore", "--default-character-set=utf8mb4")
	n, warn, err := dumpObject(ctx, out, UsersObject, cmd)
	stats.BytesRead += n
	stats.Warnings = append(stats.Warnings, warn...)
	if err != nil {
		return fmt.Errorf("dump users and grants: %w", err)
	}
	stats.Meta[MetaUsers] = "included"
	return nil
}

// usersUnavailable says why users and grants cannot be dumped, or "".
func (c *conn) usersUnavailable(ctx context.Context, client string, srv *server, mariadbTool bool) string {
	switch {
	case !mariadbTool:
		return "the dump tool is not MariaDB's (no --system=users)"
	case !srv.mariadb:
		return "the server is not MariaDB (no --system=users)"
	}
	// mariadb-dump reads mysql.global_priv (10.4+) or mysql.user.
	if _, err := c.query(ctx, client, "SELECT 1 FROM mysql.global_priv LIMIT 1"); err != nil {
		if _, err2 := c.query(ctx, client, "SELECT 1 FROM mysql.user LIMIT 1"); err2 != nil {
			return "the user may not read mysql.global_priv"
		}
	}
	return ""
}

// nonTransactional names the tables of dbs whose engine has no
// transactions.
func (c *conn) nonTransactional(ctx context.Context, client string, dbs []string) ([]string, error) {
	if len(dbs) == 0 {
		return nil, nil
	}
	var lits []string
	for _, d := range dbs {
		lits = append(lits, hexLiteral(d))
	}
	rows, err := c.query(ctx, client, "SELECT HEX(TABLE_SCHEMA), HEX(TABLE_NAME), ENGINE FROM information_schema.TABLES "+
		"WHERE TABLE_TYPE = 'BASE TABLE' AND ENGINE IS NOT NULL AND ENGINE NOT IN ('InnoDB', 'ROCKSDB', 'TokuDB', 'MEMORY') "+
		"AND TABLE_SCHEMA IN ("+strings.Join(lits, ", ")+") ORDER BY TABLE_SCHEMA, TABLE_NAME")
	if err != nil {
		return nil, err
	}
	byDB := map[string][]string{}
	var order []string
	for _, r := range rows {
		if len(r) != 3 {
			continue
		}
		db, _ := unhex(r[0])
		t, _ := unhex(r[1])
		if _, ok := byDB[db]; !ok {
			order = append(order, db)
		}
		byDB[db] = append(byDB[db], fmt.Sprintf("%s (%s)", t, r[2]))
	}
	var out []string
	for _, db := range order {
		ts := byDB[db]
		more := ""
		if len(ts) > 10 {
			more = fmt.Sprintf(" and %d more", len(ts)-10)
			ts = ts[:10]
		}
		out = append(out, fmt.Sprintf("database %s: tables %s%s have no transactions: their dump is not consistent with the other tables (convert them to InnoDB)", db, strings.Join(ts, ", "), more))
	}
	return out, nil
}

// dumpObject streams one tool's output into the object name.
func dumpObject(ctx context.Context, out drivers.ObjectWriter, name string, cmd dumptool.Cmd) (int64, []string, error) {
	w, err := out.Create(ctx, name, DumpFormat)
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
	var warn []string
	for _, l := range dumptool.Lines(stderr) {
		warn = append(warn, cmd.Name()+": "+l)
	}
	return n, warn, nil
}

// identPattern is what a character set or collation name from a manifest
// may hold before it is written into SQL.
var identPattern = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

var _ drivers.Source = (*Source)(nil)

// Check proves the server accepts the login: it connects as a backup would
// and reads the server's version and schemas. The guided setup calls it
// while the user answers.
func (s *Source) Check(ctx context.Context) error {
	client, _, err := tools()
	if err != nil {
		return err
	}
	c, err := newConn(s.spec.Host, s.spec.Port, s.spec.Socket, s.spec.User, s.spec.PasswordFile)
	if err != nil {
		return err
	}
	defer c.close()
	_, err = c.inspect(ctx, client)
	return err
}
