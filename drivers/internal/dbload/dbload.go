// Package dbload is what the Load functions of the database drivers
// (drivers/postgres, drivers/mysql) share: their result, and the plan of
// which dump of a snapshot goes into which database of the server.
package dbload

import (
	"fmt"
	"path/filepath"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers/internal/dumptool"
)

// Result is what a Load did.
type Result struct {
	// Loaded lists the databases loaded, as "dumped → loaded as".
	Loaded []string
	// Notes are what the tools said that did not stop the load.
	Notes []string
}

// Job loads one dump.
type Job struct {
	// From is the database dumped, To the one to load it into.
	From, To string
	// File is the dump, restored into the load's directory.
	File string
}

// Dumps describes the dumps of one kind of database source.
type Dumps struct {
	// Kind is the snapshot's source kind ("postgres").
	Kind string
	// Ext and Format are those of a dump object (".pgdump", its format).
	Ext, Format string
	// MetaDatabases is the manifest's meta key listing what was dumped.
	MetaDatabases string
}

// Plan checks that m is a snapshot of k's kind and returns the loads of
// its dumps, restored as files into dir, in the manifest's order. rename
// maps the name of a dumped database to the name to load it as; nil loads
// every dump under its own name, and a dump not in a non-nil map is not
// loaded. A name in rename that the snapshot holds no dump of is an error.
func (k Dumps) Plan(dir string, m *v1.SnapshotManifest, rename map[string]string) ([]Job, error) {
	if m.SourceKind != k.Kind {
		return nil, fmt.Errorf("snapshot %s of source %s is a %s snapshot, not a %s one", m.ID, m.Source, m.SourceKind, k.Kind)
	}
	var jobs []Job
	seen := map[string]bool{}
	for _, ob := range m.Objects {
		db, ok := dumptool.DatabaseName(ob.Name, k.Ext)
		if !ok || ob.Format != k.Format {
			continue
		}
		to := db
		if rename != nil {
			if to, ok = rename[db]; !ok {
				continue
			}
		}
		seen[db] = true
		jobs = append(jobs, Job{From: db, To: to, File: filepath.Join(dir, ob.Name)})
	}
	for db := range rename {
		if !seen[db] {
			return nil, fmt.Errorf("snapshot %s holds no dump of database %q (it has: %s)", m.ID, db, m.Meta[k.MetaDatabases])
		}
	}
	return jobs, nil
}

// RefuseOverwrite is the error for a target database that already holds
// n of what (tables, views ...) when the load may not overwrite it.
func RefuseOverwrite(j Job, n int, what string) error {
	return fmt.Errorf("database %q on the server already has %d %s: refusing to overwrite it (load it under another name with --database %s=NEWNAME, or overwrite it with --overwrite)", j.To, n, what, j.From)
}
