package postgres

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/internal/dbload"
	"github.com/aegis-backup/aegis/drivers/internal/dumptool"
)

// LoadOptions name the server a restore loads dumps into, and how.
type LoadOptions struct {
	// Host is a host name or a socket directory; Port, User and
	// PasswordFile as in a PostgresSource. Empty fields fall back to
	// libpq's defaults (PGHOST, ~/.pgpass, ...).
	Host         string
	Port         int
	User         string
	PasswordFile string
	// Databases maps the name of a dumped database to the name to load it
	// as; nil loads every dump under its own name. A dump not in a non-nil
	// map is not loaded.
	Databases map[string]string
	// Globals also loads the roles and tablespaces of the snapshot, first.
	// Existing roles get the attributes and passwords of the backup.
	Globals bool
	// Overwrite loads into databases that already have tables: objects of
	// the dump are dropped and recreated (pg_restore --clean --if-exists).
	Overwrite bool
	// Jobs is pg_restore's number of parallel jobs; 0 means up to 4.
	Jobs int
	// Out receives a line per step; nil discards them.
	Out    io.Writer
	Logger *slog.Logger
}

// LoadResult is what Load did.
type LoadResult = dbload.Result

// dumps describes the dumps of a postgres snapshot to Load.
var dumps = dbload.Dumps{Kind: "postgres", Ext: DumpExt, Format: DumpFormat, MetaDatabases: MetaDatabases}

// Load loads the dumps of a postgres snapshot, restored as files into dir
// (dir/NAME.pgdump, dir/_globals.sql), into the server opts names. Before
// loading anything it checks every target database: one that already has
// tables is refused unless opts.Overwrite is set. A database that does not
// exist is created: under its own name with pg_restore --create, which
// keeps its encoding, locale and settings; under another name from
// template0. pg_restore stops at the first error.
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
	c, err := newConn(opts.Host, opts.Port, opts.User, opts.PasswordFile)
	if err != nil {
		return res, err
	}
	psql, err := dumptool.Find("psql")
	if err != nil {
		return res, err
	}
	pgRestore, err := dumptool.Find("pg_restore")
	if err != nil {
		return res, err
	}

	exists, err := checkTargets(ctx, c, psql, jobs, opts.Overwrite)
	if err != nil {
		return res, err
	}
	if opts.Globals {
		if err := loadGlobals(ctx, c, psql, dir, m, out, &res); err != nil {
			return res, err
		}
	}
	jobsN := opts.Jobs
	if jobsN <= 0 {
		jobsN = min(4, runtime.NumCPU())
	}
	for _, j := range jobs {
		if err := loadDatabase(ctx, c, psql, pgRestore, j, exists[j.To], opts.Overwrite, jobsN, &res); err != nil {
			return res, err
		}
		fmt.Fprintf(out, "loaded database %s into %s\n", j.From, j.To)
	}
	return res, nil
}

// checkTargets looks at every target database before anything is loaded,
// so that a refused overwrite leaves the server untouched. It returns the
// databases of the server; a target with tables, views or sequences is
// refused unless overwrite is set.
func checkTargets(ctx context.Context, c *conn, psql string, jobs []dbload.Job, overwrite bool) (map[string]bool, error) {
	srv, err := c.inspect(ctx, psql, []string{"postgres", "template1"})
	if err != nil {
		return nil, err
	}
	exists := map[string]bool{}
	for _, db := range srv.databases {
		exists[db] = true
	}
	for _, j := range jobs {
		if !exists[j.To] {
			continue
		}
		n, err := tableCount(ctx, c, psql, j.To)
		if err != nil {
			return nil, err
		}
		if n > 0 && !overwrite {
			return nil, dbload.RefuseOverwrite(j, n, "tables, views or sequences")
		}
	}
	return exists, nil
}

// loadGlobals loads the roles and tablespaces of the snapshot from dir with
// psql, and keeps what psql said in res.Notes: statements that fail there
// (a role that exists) do not fail the restore.
func loadGlobals(ctx context.Context, c *conn, psql, dir string, m *v1.SnapshotManifest, out io.Writer, res *LoadResult) error {
	file := filepath.Join(dir, GlobalsObject)
	if _, err := os.Stat(file); err != nil {
		return fmt.Errorf("snapshot %s holds no roles and tablespaces (%s): %w", m.ID, GlobalsObject, err)
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	// Roles that exist already make CREATE ROLE fail; go on, so that
	// the ALTER ROLE after it still applies.
	cmd := c.cmd(psql, c.db, "-X", "-w", "-q", "-v", "ON_ERROR_STOP=0")
	cmd.Stdin = f
	stderr, err := dumptool.Run(ctx, cmd)
	if err != nil {
		return fmt.Errorf("load roles and tablespaces: %w", err)
	}
	res.Notes = append(res.Notes, prefixed("psql", dumptool.Lines(stderr))...)
	fmt.Fprintf(out, "loaded roles and tablespaces\n")
	return nil
}

// loadDatabase restores the dump of job j with pg_restore and records it in
// res. How the target is reached depends on whether it exists: an existing
// one is loaded into (cleaned first with overwrite); a missing one under
// the dump's own name is made by pg_restore --create, which keeps its
// encoding, locale and settings; under another name it is created empty
// from template0 first, since --create would use the dumped name.
func loadDatabase(ctx context.Context, c *conn, psql, pgRestore string, j dbload.Job, exists, overwrite bool, jobsN int, res *LoadResult) error {
	args := []string{"--exit-on-error", "--no-password", "--jobs=" + strconv.Itoa(jobsN)}
	switch {
	case exists:
		if overwrite {
			args = append(args, "--clean", "--if-exists")
		}
		args = append(args, "--dbname="+conninfoDB(j.To))
	case j.To == j.From:
		args = append(args, "--create", "--dbname="+conninfoDB(c.db))
	default:
		if err := createDatabase(ctx, c, psql, j.To); err != nil {
			return err
		}
		args = append(args, "--dbname="+conninfoDB(j.To))
	}
	args = append(args, j.File)
	stderr, err := dumptool.Run(ctx, c.cmd(pgRestore, "", args...))
	if err != nil {
		return fmt.Errorf("load database %s into %s: %w", j.From, j.To, err)
	}
	res.Notes = append(res.Notes, prefixed("pg_restore", dumptool.Lines(stderr))...)
	res.Loaded = append(res.Loaded, j.From+" → "+j.To)
	return nil
}

// tableCount counts the relations a user made in db.
func tableCount(ctx context.Context, c *conn, psql, db string) (int, error) {
	rows, err := c.query(ctx, psql, db, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace `+
		`WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname <> 'information_schema' `+
		`AND n.nspname NOT LIKE 'pg\_%'`, 1)
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 {
		return 0, fmt.Errorf("psql: no answer counting the tables of %s", db)
	}
	return strconv.Atoi(rows[0][0])
}

// createDatabase creates an empty database named db. The name travels as a
// psql variable, quoted by psql as an identifier.
func createDatabase(ctx context.Context, c *conn, psql, db string) error {
	cmd := c.cmd(psql, c.db, "-X", "-w", "-q", "-v", "ON_ERROR_STOP=1", "-v", "db="+db)
	cmd.Stdin = strings.NewReader("CREATE DATABASE :\"db\" TEMPLATE template0;\n")
	if _, err := dumptool.Run(ctx, cmd); err != nil {
		return fmt.Errorf("create database %s: %w", db, err)
	}
	return nil
}

// conninfoDB writes a database name as a libpq connection string, so that a
// name with "=" or a URI-like name is taken as a name.
func conninfoDB(db string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "dbname='" + r.Replace(db) + "'"
}
