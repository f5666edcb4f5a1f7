package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

// restoreInto holds the restore flags that go past --target: straight into
// Docker volumes, and loading database dumps into a server.
type restoreInto struct {
	volumes        []string
	loadInto       string
	dbUser         string
	dbPasswordFile string
	databases      []string
	globals        bool
	overwrite      bool
}

func (ri *restoreInto) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVar(&ri.volumes, "to-volume", nil, "restore a dockerVolume snapshot straight into this Docker volume (created if missing; --target is then not needed); with several volumes in the snapshot, VOLUME=NAME, repeatable")
	f.StringVar(&ri.loadInto, "load-into", "", "after writing database dumps to --target, load them into this server: HOST[:PORT], or a socket (a directory for PostgreSQL, a socket file for MySQL)")
	f.StringVar(&ri.dbUser, "db-user", "", "user for --load-into")
	f.StringVar(&ri.dbPasswordFile, "db-password-file", "", "file holding the password for --load-into (mode 0600)")
	f.StringArrayVar(&ri.databases, "database", nil, "with --load-into, load only this database, or load it under another name with NAME=NEWNAME; repeatable (default: all, under their own names)")
	f.BoolVar(&ri.globals, "globals", false, "with --load-into, also load roles and tablespaces (PostgreSQL) or users and grants (MySQL) first")
	f.BoolVar(&ri.overwrite, "overwrite", false, "load into databases that already have tables, or restore into a Docker volume that is not empty")
}

// check reports usage errors; it tells whether --target may be left out.
func (ri *restoreInto) check(target string) error {
	if len(ri.volumes) > 0 && ri.loadInto != "" {
		return errors.New("--to-volume and --load-into do not go together: restore the volumes and the databases in two runs, with --source")
	}
	if ri.loadInto == "" && (ri.dbUser != "" || ri.dbPasswordFile != "" || len(ri.databases) > 0 || ri.globals) {
		return errors.New("--db-user, --db-password-file, --database and --globals need --load-into")
	}
	if ri.loadInto != "" && target == "" {
		return errors.New("--load-into needs --target DIR, where the dumps are written first")
	}
	if len(ri.volumes) == 0 && target == "" {
		return errors.New("--target DIR is required")
	}
	return nil
}

// restoreVolumes restores the one dockerVolume snapshot selected straight
// into Docker volumes, as --to-volume says.
func (ri *restoreInto) restoreVolumesOf(ctx context.Context, out io.Writer, d drivers.Destination, snaps []snapshot.Snapshot, keys *snapshot.KeyRing) error {
	for _, s := range snaps {
		if s.Manifest.SourceKind != "dockerVolume" {
			return invalid(fmt.Errorf("--to-volume restores dockerVolume sources only; source %s is a %s source: choose one with --source", s.Manifest.Source, s.Manifest.SourceKind))
		}
	}
	if len(snaps) != 1 {
		return invalid(errors.New("--to-volume restores one source at a time: choose one with --source"))
	}
	return ri.restoreVolumes(ctx, out, d, snaps[0], keys)
}

// checkLoad refuses a --load-into that cannot apply to the snapshots,
// before anything is restored.
func (ri *restoreInto) checkLoad(snaps []snapshot.Snapshot) error {
	if ri.loadInto == "" {
		return nil
	}
	kinds := 0
	for _, s := range snaps {
		if k := s.Manifest.SourceKind; k == "postgres" || k == "mysql" {
			kinds++
		}
	}
	if kinds == 0 {
		return invalid(errors.New("--load-into: the snapshot holds no postgres or mysql source"))
	}
	if kinds > 1 {
		return invalid(errors.New("--load-into loads one database source at a time: choose one with --source"))
	}
	return nil
}

// loadAll loads the database dumps restored under target, when
// --load-into asks for it.
func (ri *restoreInto) loadAll(ctx context.Context, out io.Writer, snaps []snapshot.Snapshot, target string) error {
	if ri.loadInto == "" {
		return nil
	}
	for _, s := range snaps {
		if err := ri.load(ctx, out, filepath.Join(target, s.Manifest.Source), s.Manifest); err != nil {
			return err
		}
	}
	return nil
}

// restoreVolumes restores a dockerVolume snapshot straight into Docker
// volumes, as --to-volume says.
func (ri *restoreInto) restoreVolumes(ctx context.Context, out io.Writer, d drivers.Destination, s snapshot.Snapshot, keys *snapshot.KeyRing) error {
	targets, err := snapshot.VolumeTargets(s.Manifest, ri.volumes)
	if err != nil {
		return invalid(err)
	}
	done, err := snapshot.RestoreToVolumes(ctx, d, s, snapshot.VolumeRestoreOptions{Targets: targets, Keys: keys, Overwrite: ri.overwrite, Out: out})
	m := s.Manifest
	for _, v := range done {
		fmt.Fprintf(out, "restored volume %s of snapshot %s source %s from %s into Docker volume %s: %d files, %d dirs, %s\n",
			v.From, m.ID, m.Source, s.Destination, v.To, v.Stats.Files, v.Stats.Dirs, humanBytes(v.Stats.Bytes))
	}
	if err != nil {
		return failed(err)
	}
	return nil
}

// load loads the dumps restored into dir into the server --load-into
// names.
func (ri *restoreInto) load(ctx context.Context, out io.Writer, dir string, m *v1.SnapshotManifest) error {
	dbs, err := ri.databaseMap()
	if err != nil {
		return invalid(err)
	}
	host, port, socket, err := parseServer(ri.loadInto)
	if err != nil {
		return invalid(err)
	}
	if m.SourceKind != "postgres" && m.SourceKind != "mysql" {
		return nil
	}
	loaded, notes, err := snapshot.LoadDumps(ctx, dir, m, snapshot.LoadTarget{
		Host: host, Port: port, Socket: socket, User: ri.dbUser, PasswordFile: ri.dbPasswordFile,
		Databases: dbs, Globals: ri.globals, Overwrite: ri.overwrite, Out: out,
	})
	if err != nil {
		return failed(fmt.Errorf("load source %s into %s: %w", m.Source, ri.loadInto, err))
	}
	for _, n := range notes {
		fmt.Fprintf(out, "  note: %s\n", n)
	}
	fmt.Fprintf(out, "loaded %d database(s) of source %s into %s\n", len(loaded), m.Source, ri.loadInto)
	return nil
}

// databaseMap reads the --database flags: nil for all databases.
func (ri *restoreInto) databaseMap() (map[string]string, error) {
	if len(ri.databases) == 0 {
		return nil, nil
	}
	dbs := map[string]string{}
	for _, d := range ri.databases {
		from, to, ok := strings.Cut(d, "=")
		if !ok {
			to = from
		}
		if from == "" || to == "" {
			return nil, fmt.Errorf("--database %q: want NAME or NAME=NEWNAME", d)
		}
		dbs[from] = to
	}
	return dbs, nil
}

// parseServer reads --load-into: a socket path, or HOST[:PORT] ([V6]:PORT).
func parseServer(s string) (host string, port int, socket string, err error) {
	if strings.HasPrefix(s, "/") {
		return "", 0, s, nil
	}
	h, p, splitErr := net.SplitHostPort(s)
	if splitErr != nil {
		// No port.
		return strings.Trim(s, "[]"), 0, "", nil
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, "", fmt.Errorf("--load-into %q: invalid port %q", s, p)
	}
	return h, port, "", nil
}
