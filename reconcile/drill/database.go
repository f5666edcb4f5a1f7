package drill

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/mysql"
	"github.com/aegis-backup/aegis/drivers/postgres"
)

// TempDBPrefix starts the name of every temporary database of a drill.
// Cleanup drops only databases named so.
const TempDBPrefix = "aegis_drill_"

// dbServer is what a drill needs of a database server.
type dbServer interface {
	Databases(ctx context.Context) ([]string, error)
	Tables(ctx context.Context, db string) (map[string]int64, error)
	QueryInt(ctx context.Context, db, sql string) (int64, error)
	DropDatabase(ctx context.Context, db string) error
}

// dbKind binds a database driver's functions.
type dbKind struct {
	format     string
	connect    func(ctx context.Context, t v1.DrillTarget) (dbServer, func(), error)
	load       func(ctx context.Context, dir string, m *v1.SnapshotManifest, t v1.DrillTarget, dbs map[string]string) error
	dumpTables func(ctx context.Context, file string) (map[string]int64, error)
	databaseOf func(name string) (string, bool)
}

var dbKinds = map[string]dbKind{
	"postgres": {
		format: postgres.DumpFormat,
		connect: func(ctx context.Context, t v1.DrillTarget) (dbServer, func(), error) {
			host := t.Host
			if t.Socket != "" {
				host = t.Socket
			}
			s, err := postgres.Connect(ctx, host, t.Port, t.User, t.PasswordFile)
			return s, func() {}, err
		},
		load: func(ctx context.Context, dir string, m *v1.SnapshotManifest, t v1.DrillTarget, dbs map[string]string) error {
			host := t.Host
			if t.Socket != "" {
				host = t.Socket
			}
			_, err := postgres.Load(ctx, dir, m, postgres.LoadOptions{Host: host, Port: t.Port, User: t.User,
				PasswordFile: t.PasswordFile, Databases: dbs, Out: io.Discard})
			return err
		},
		dumpTables: postgres.DumpTables,
		databaseOf: postgres.DatabaseOf,
	},
	"mysql": {
		format: mysql.DumpFormat,
		connect: func(ctx context.Context, t v1.DrillTarget) (dbServer, func(), error) {
			s, err := mysql.Connect(ctx, t.Host, t.Port, t.Socket, t.User, t.PasswordFile)
			if err != nil {
				return nil, nil, err
			}
			return s, s.Close, nil
		},
		load: func(ctx context.Context, dir string, m *v1.SnapshotManifest, t v1.DrillTarget, dbs map[string]string) error {
			_, err := mysql.Load(ctx, dir, m, mysql.LoadOptions{Host: t.Host, Port: t.Port, Socket: t.Socket, User: t.User,
				PasswordFile: t.PasswordFile, Databases: dbs, Out: io.Discard})
			return err
		},
		dumpTables: mysql.DumpTables,
		databaseOf: mysql.DatabaseOf,
	},
}

// targetOf returns the server a database source's drills load into: its
// drill target, or the server it was backed up from.
func targetOf(p *v1.BackupPolicy, src v1.Source) v1.DrillTarget {
	if d := p.Spec.Drills; d != nil {
		for _, t := range d.DrillTargets {
			if t.Source == src.Name {
				return t
			}
		}
	}
	switch {
	case src.Postgres != nil:
		s := src.Postgres
		return v1.DrillTarget{Source: src.Name, Host: s.Host, Port: s.Port, User: s.User, PasswordFile: s.PasswordFile}
	case src.MySQL != nil:
		s := src.MySQL
		return v1.DrillTarget{Source: src.Name, Host: s.Host, Port: s.Port, Socket: s.Socket, User: s.User, PasswordFile: s.PasswordFile}
	}
	return v1.DrillTarget{Source: src.Name}
}

// tempNames picks a temporary database name for each dumped database,
// refusing a name the server has already.
func tempNames(ctx context.Context, srv dbServer, dumped []string, random io.Reader) (map[string]string, error) {
	have, err := srv.Databases(ctx)
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	taken := map[string]bool{}
	for _, h := range have {
		taken[h] = true
	}
	out := map[string]string{}
	for _, db := range dumped {
		var b [8]byte
		if _, err := io.ReadFull(random, b[:]); err != nil {
			return nil, fmt.Errorf("random name: %w", err)
		}
		name := TempDBPrefix + hex.EncodeToString(b[:])
		if taken[name] {
			return nil, fmt.Errorf("temporary database %s exists already on the server: refusing to use it", name)
		}
		out[db], taken[name] = name, true
	}
	return out, nil
}

// dumpedDatabases lists the databases a snapshot holds dumps of, sorted.
func dumpedDatabases(k dbKind, m *v1.SnapshotManifest) ([]string, map[string]string) {
	var dbs []string
	files := map[string]string{}
	for _, ob := range m.Objects {
		if db, ok := k.databaseOf(ob.Name); ok && ob.Format == k.format {
			dbs = append(dbs, db)
			files[db] = ob.Name
		}
	}
	sort.Strings(dbs)
	return dbs, files
}

// drillDatabases loads the dumps restored into dir into temporary
// databases, checks them and drops them, also on failure.
func (r *runner) drillDatabases(ctx context.Context, src v1.Source, m *v1.SnapshotManifest, dir string, res *v1.DrillSourceResult) error {
	k := dbKinds[src.Driver()]
	tgt := targetOf(r.policy, src)
	srv, closeFn, err := k.connect(ctx, tgt)
	if err != nil {
		return fmt.Errorf("connect to the drill's database server: %w", err)
	}
	defer closeFn()
	dumped, files := dumpedDatabases(k, m)
	temps, err := tempNames(ctx, srv, dumped, r.opts.Rand)
	if err != nil {
		return err
	}
	for _, db := range dumped {
		if err := r.journal.addDatabase(src.Driver(), tgt, temps[db]); err != nil {
			return err
		}
	}
	defer r.dropAll(ctx, srv, dumped, temps)
	if err := k.load(ctx, dir, m, tgt, temps); err != nil {
		return fmt.Errorf("load into temporary databases: %w", err)
	}
	res.RestoreDuration = r.opts.Now().Sub(r.sourceStart).Round(time.Millisecond).String()
	res.MeasuredRTO = res.RestoreDuration
	var errs []string
	for _, db := range dumped {
		got, err := r.checkDatabase(ctx, srv, k, src, db, temps[db], filepath.Join(dir, files[db]))
		res.Databases = append(res.Databases, got)
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// dropAll drops the temporary databases, even when ctx has ended.
func (r *runner) dropAll(ctx context.Context, srv dbServer, dumped []string, temps map[string]string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	for _, db := range dumped {
		if err := srv.DropDatabase(ctx, temps[db]); err != nil {
			r.log.Error("drop temporary database", "database", temps[db], "err", err)
			continue
		}
		r.journal.removeDatabase(temps[db])
	}
}

// checkDatabase compares the tables and row counts of a loaded database
// with its dump, then runs the policy's checks in it.
func (r *runner) checkDatabase(ctx context.Context, srv dbServer, k dbKind, src v1.Source, db, temp, dump string) (v1.DrillDatabase, error) {
	out := v1.DrillDatabase{Name: db, TemporaryDB: temp}
	want, err := k.dumpTables(ctx, dump)
	if err != nil {
		return out, fmt.Errorf("database %s: %w", db, err)
	}
	got, err := srv.Tables(ctx, temp)
	if err != nil {
		return out, fmt.Errorf("database %s: %w", db, err)
	}
	out.Tables = len(got)
	for _, n := range got {
		out.Rows += n
	}
	if err := compareTables(want, got); err != nil {
		return out, fmt.Errorf("database %s: %w", db, err)
	}
	var errs []string
	for _, c := range r.checksFor(src.Name, db) {
		q := runCheck(ctx, srv, temp, c)
		out.Checks = append(out.Checks, q)
		if q.Result == v1.ResultSucceeded {
			out.ChecksPassed++
		} else {
			errs = append(errs, fmt.Sprintf("check %q: %s", c.SQL, q.Error))
		}
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("database %s: %s", db, strings.Join(errs, "; "))
	}
	return out, nil
}

// compareTables reports the first differences between the tables and row
// counts of a dump and of the database loaded from it.
func compareTables(want, got map[string]int64) error {
	var diffs []string
	for _, t := range sortedKeys(want) {
		n, ok := got[t]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("table %s of the dump is missing", t))
		case n != want[t]:
			diffs = append(diffs, fmt.Sprintf("table %s has %d rows, the dump holds %d", t, n, want[t]))
		}
	}
	for _, t := range sortedKeys(got) {
		if _, ok := want[t]; !ok {
			diffs = append(diffs, fmt.Sprintf("table %s is not in the dump", t))
		}
	}
	if len(diffs) > 5 {
		diffs = append(diffs[:5], fmt.Sprintf("and %d more differences", len(diffs)-5))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%s", strings.Join(diffs, ", "))
	}
	return nil
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checksFor returns the policy's checks that apply to a database.
func (r *runner) checksFor(source, db string) []v1.DrillCheck {
	var out []v1.DrillCheck
	if r.policy.Spec.Drills == nil {
		return nil
	}
	for _, c := range r.policy.Spec.Drills.Checks {
		if (c.Source == "" || c.Source == source) && (c.Database == "" || c.Database == db) {
			out = append(out, c)
		}
	}
	return out
}

// runCheck runs one check and judges its answer.
func runCheck(ctx context.Context, srv dbServer, temp string, c v1.DrillCheck) v1.DrillQuery {
	q := v1.DrillQuery{SQL: c.SQL, Result: v1.ResultFailed}
	v, err := srv.QueryInt(ctx, temp, c.SQL)
	q.Value = v
	switch {
	case err != nil:
		q.Error = err.Error()
	case c.Min != nil && v < *c.Min:
		q.Error = fmt.Sprintf("returned %d, want at least %d", v, *c.Min)
	case c.Max != nil && v > *c.Max:
		q.Error = fmt.Sprintf("returned %d, want at most %d", v, *c.Max)
	default:
		q.Result = v1.ResultSucceeded
	}
	return q
}
