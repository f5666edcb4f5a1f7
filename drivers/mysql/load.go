package mysql

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/internal/dbload"
	"github.com/aegis-backup/aegis/drivers/internal/dumptool"
)

// LoadOptions name the server a restore loads dumps into, and how.
type LoadOptions struct {
	// Host, Port, Socket, User and PasswordFile as in a MySQLSource.
	Host         string
	Port         int
	Socket       string
	User         string
	PasswordFile string
	// Databases maps the name of a dumped database to the name to load it
	// as; nil loads every dump under its own name. A dump not in a non-nil
	// map is not loaded.
	Databases map[string]string
	// Globals also loads the users and grants of the snapshot, first.
	// Existing users are left as they are (CREATE USER IF NOT EXISTS);
	// grants are added.
	Globals bool
	// Overwrite loads into databases that already have tables: the dump
	// drops and recreates each of its tables, views, routines, triggers
	// and events.
	Overwrite bool
	// Out receives a line per step; nil discards them.
	Out    io.Writer
	Logger *slog.Logger
}

// LoadResult is what Load did.
type LoadResult = dbload.Result

// dumps describes the dumps of a mysql snapshot to Load.
var dumps = dbload.Dumps{Kind: "mysql", Ext: DumpExt, Format: DumpFormat, MetaDatabases: MetaDatabases}

// Load loads the dumps of a mysql snapshot, restored as files into dir
// (dir/NAME.sql, dir/_users.sql), into the server opts names. Before
// loading anything it checks every target database: one that already has
// tables is refused unless opts.Overwrite is set. A database that does not
// exist is created with the character set and collation it had. The client
// stops at the first error.
func Load(ctx context.Context, dir string, m *v1.SnapshotManifest, opts LoadOptions) (LoadResult, error) {
	var res LoadResult
	jobs, err := dumps.Plan(dir, m, opts.Databases)
	if err != nil {
		return res, err
	}
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	client, err := dumptool.Find("mariadb", "mysql")
	if err != nil {
		return res, err
	}
	c, err := newConn(opts.Host, opts.Port, opts.Socket, opts.User, opts.PasswordFile)
	if err != nil {
		return res, err
	}
	defer c.close()

	exists, err := c.checkTargets(ctx, client, jobs, opts.Overwrite)
	if err != nil {
		return res, err
	}
	if opts.Globals {
		if err := c.loadUsers(ctx, client, dir, m, out, &res); err != nil {
			return res, err
		}
	}
	for _, j := range jobs {
		if err := c.loadDatabase(ctx, client, m, j, exists[j.To]); err != nil {
			return res, err
		}
		res.Loaded = append(res.Loaded, j.From+" → "+j.To)
		fmt.Fprintf(out, "loaded database %s into %s\n", j.From, j.To)
	}
	return res, nil
}

// checkTargets looks at every target database before anything is loaded,
// so that a refused overwrite leaves the server untouched. It returns the
// targets that exist already; one with tables or views is refused unless
// overwrite is set.
func (c *conn) checkTargets(ctx context.Context, client string, jobs []dbload.Job, overwrite bool) (map[string]bool, error) {
	srv, err := c.inspect(ctx, client)
	if err != nil {
		return nil, err
	}
	exists := map[string]bool{}
	for _, j := range jobs {
		if _, ok := srv.schema(j.To); !ok {
			continue
		}
		exists[j.To] = true
		rows, err := c.query(ctx, client, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "+hexLiteral(j.To))
		if err != nil {
			return nil, err
		}
		n := 0
		if len(rows) == 1 && len(rows[0]) == 1 {
			n, _ = strconv.Atoi(rows[0][0])
		}
		if n > 0 && !overwrite {
			return nil, dbload.RefuseOverwrite(j, n, "tables or views")
		}
	}
	return exists, nil
}

// loadUsers loads the users and grants of the snapshot from dir. A
// statement that fails is noted in res rather than failing the restore:
// the databases matter more than, say, a grant on the server's own
// accounts.
func (c *conn) loadUsers(ctx context.Context, client, dir string, m *v1.SnapshotManifest, out io.Writer, res *LoadResult) error {
	file := filepath.Join(dir, UsersObject)
	if _, err := os.Stat(file); err != nil {
		return fmt.Errorf("snapshot %s holds no users and grants (%s): %s", m.ID, UsersObject, m.Meta[MetaUsers])
	}
	// Go on past statements this user may not run (a grant of the
	// server's own accounts, say): the others still apply. The server
	// answered a moment ago, so what fails here is such a statement.
	if err := c.source(ctx, client, file, "", "--force"); err != nil {
		res.Notes = append(res.Notes, "some users or grants were not loaded: "+err.Error())
		fmt.Fprintf(out, "loaded users and grants, some with errors\n")
	} else {
		fmt.Fprintf(out, "loaded users and grants\n")
	}
	return nil
}

// loadDatabase loads the dump of job j, first creating the target database
// when it does not exist, with the character set and collation the dumped
// one had, since the dump itself names neither.
func (c *conn) loadDatabase(ctx context.Context, client string, m *v1.SnapshotManifest, j dbload.Job, exists bool) error {
	if !exists {
		create := "CREATE DATABASE " + quoteIdent(j.To)
		if cs := m.Meta[metaCharset+j.From]; identPattern.MatchString(cs) {
			create += " CHARACTER SET " + cs
		}
		if co := m.Meta[metaCollation+j.From]; identPattern.MatchString(co) {
			create += " COLLATE " + co
		}
		if _, err := c.query(ctx, client, create); err != nil {
			return fmt.Errorf("create database %s: %w", j.To, err)
		}
	}
	if err := c.source(ctx, client, j.File, j.To); err != nil {
		return fmt.Errorf("load database %s into %s: %w", j.From, j.To, err)
	}
	return nil
}

// source feeds file to the client, in database db when set.
func (c *conn) source(ctx context.Context, client, file, db string, extra ...string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	args := []string{"--batch", "--default-character-set=utf8mb4", "--max-allowed-packet=1G"}
	if db != "" {
		args = append(args, "--database="+db)
	}
	cmd := c.cmd(client, append(args, extra...)...)
	cmd.Stdin = f
	_, err = dumptool.Run(ctx, cmd)
	return err
}
