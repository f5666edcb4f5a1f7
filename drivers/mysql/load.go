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
type LoadResult struct {
	// Loaded lists the databases loaded, as "dumped → loaded as".
	Loaded []string
	// Notes are what the tools said that did not stop the load.
	Notes []string
}

// Load loads the dumps of a mysql snapshot, restored as files into dir
// (dir/NAME.sql, dir/_users.sql), into the server opts names. Before
// loading anything it checks every target database: one that already has
// tables is refused unless opts.Overwrite is set. A database that does not
// exist is created with the character set and collation it had. The client
// stops at the first error.
func Load(ctx context.Context, dir string, m *v1.SnapshotManifest, opts LoadOptions) (LoadResult, error) {
	var res LoadResult
	if m.SourceKind != "mysql" {
		return res, fmt.Errorf("snapshot %s of source %s is a %s snapshot, not a mysql one", m.ID, m.Source, m.SourceKind)
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

	type job struct{ from, to, file string }
	var jobs []job
	seen := map[string]bool{}
	for _, ob := range m.Objects {
		db, ok := dumptool.DatabaseName(ob.Name, DumpExt)
		if !ok || ob.Format != DumpFormat {
			continue
		}
		to := db
		if opts.Databases != nil {
			if to, ok = opts.Databases[db]; !ok {
				continue
			}
		}
		seen[db] = true
		jobs = append(jobs, job{from: db, to: to, file: filepath.Join(dir, ob.Name)})
	}
	for db := range opts.Databases {
		if !seen[db] {
			return res, fmt.Errorf("snapshot %s holds no dump of database %q (it has: %s)", m.ID, db, m.Meta[MetaDatabases])
		}
	}

	srv, err := c.inspect(ctx, client)
	if err != nil {
		return res, err
	}
	exists := map[string]bool{}
	for _, j := range jobs {
		if _, ok := srv.schema(j.to); !ok {
			continue
		}
		exists[j.to] = true
		rows, err := c.query(ctx, client, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "+hexLiteral(j.to))
		if err != nil {
			return res, err
		}
		n := 0
		if len(rows) == 1 && len(rows[0]) == 1 {
			n, _ = strconv.Atoi(rows[0][0])
		}
		if n > 0 && !opts.Overwrite {
			return res, fmt.Errorf("database %q on the server already has %d tables or views: refusing to overwrite it (load it under another name with --database %s=NEWNAME, or overwrite it with --overwrite)", j.to, n, j.from)
		}
	}

	if opts.Globals {
		file := filepath.Join(dir, UsersObject)
		if _, err := os.Stat(file); err != nil {
			return res, fmt.Errorf("snapshot %s holds no users and grants (%s): %s", m.ID, UsersObject, m.Meta[MetaUsers])
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
	}

	for _, j := range jobs {
		if !exists[j.to] {
			create := "CREATE DATABASE " + quoteIdent(j.to)
			if cs := m.Meta[metaCharset+j.from]; identPattern.MatchString(cs) {
				create += " CHARACTER SET " + cs
			}
			if co := m.Meta[metaCollation+j.from]; identPattern.MatchString(co) {
				create += " COLLATE " + co
			}
			if _, err := c.query(ctx, client, create); err != nil {
				return res, fmt.Errorf("create database %s: %w", j.to, err)
			}
		}
		if err := c.source(ctx, client, j.file, j.to); err != nil {
			return res, fmt.Errorf("load database %s into %s: %w", j.from, j.to, err)
		}
		res.Loaded = append(res.Loaded, j.from+" → "+j.to)
		fmt.Fprintf(out, "loaded database %s into %s\n", j.from, j.to)
	}
	return res, nil
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
