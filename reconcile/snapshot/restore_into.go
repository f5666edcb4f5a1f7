package snapshot

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/docker"
	"github.com/aegis-backup/aegis/drivers/files"
	"github.com/aegis-backup/aegis/drivers/mysql"
	"github.com/aegis-backup/aegis/drivers/postgres"
)

// VolumeTargets maps the volumes of dockerVolume snapshot m to the Docker
// volumes specs name: each spec is VOLUME=NAME, or just NAME when the
// snapshot holds one volume.
func VolumeTargets(m *v1.SnapshotManifest, specs []string) (map[string]string, error) {
	have := docker.VolumeObjects(m)
	out := map[string]string{}
	for _, v := range specs {
		from, to, ok := strings.Cut(v, "=")
		if !ok {
			if len(have) != 1 {
				return nil, fmt.Errorf("snapshot %s holds %d volumes (%s): say which goes where with --to-volume VOLUME=NAME", m.ID, len(have), strings.Join(have, ", "))
			}
			from, to = have[0], v
		}
		found := false
		for _, h := range have {
			found = found || h == from
		}
		if !found {
			return nil, fmt.Errorf("snapshot %s holds no volume %q (it has: %s)", m.ID, from, strings.Join(have, ", "))
		}
		out[from] = to
	}
	return out, nil
}

// VolumeRestoreOptions say where RestoreToVolumes restores.
type VolumeRestoreOptions struct {
	// Targets maps a volume of the snapshot to the Docker volume it goes
	// into (created if missing); volumes not named are checked, not
	// restored.
	Targets map[string]string
	Keys    *KeyRing
	// Overwrite allows a target volume that is not empty.
	Overwrite bool
	// Out gets a line per volume created.
	Out io.Writer
}

// RestoredVolume is a volume RestoreToVolumes restored.
type RestoredVolume struct {
	// From is the volume in the snapshot, To the Docker volume.
	From, To string
	Stats    files.ExtractStats
}

// RestoreToVolumes restores dockerVolume snapshot s from d straight into
// Docker volumes. Each target volume holds a .aegis-restore-incomplete
// file until its data was completely verified. It returns the volumes
// restored, by name in the snapshot.
func RestoreToVolumes(ctx context.Context, d drivers.Destination, s Snapshot, opts VolumeRestoreOptions) ([]RestoredVolume, error) {
	m := s.Manifest
	mounts, err := prepareVolumes(ctx, m, opts)
	if err != nil {
		return nil, err
	}
	stats := map[string]files.ExtractStats{}
	unpack := func(ctx context.Context, ob v1.SnapshotObject, r io.Reader) (files.ExtractStats, error) {
		from, ok := strings.CutSuffix(ob.Name, docker.ObjectExt)
		mp := mounts[from]
		if !ok || mp == "" {
			return files.ExtractStats{}, nil // not asked for; still checked
		}
		st, err := docker.ExtractVolume(ctx, r, from, mp, nil)
		stats[from] = st
		if err != nil {
			return st, fmt.Errorf("volume %s: %w", opts.Targets[from], err)
		}
		return st, nil
	}
	if _, err := Restore(ctx, d, s, RestoreOptions{Keys: opts.Keys, Unpack: unpack}); err != nil {
		return nil, fmt.Errorf("restore %s/%s from %s: %w", m.Policy, m.Source, s.Destination, err)
	}
	var done []RestoredVolume
	for _, from := range slices.Sorted(maps.Keys(mounts)) {
		if err := os.Remove(filepath.Join(mounts[from], incompleteMarker)); err != nil {
			return done, err
		}
		done = append(done, RestoredVolume{From: from, To: opts.Targets[from], Stats: stats[from]})
	}
	return done, nil
}

// prepareVolumes creates (or checks) the target volumes, marks each
// incomplete, and returns where each is mounted.
func prepareVolumes(ctx context.Context, m *v1.SnapshotManifest, opts VolumeRestoreOptions) (map[string]string, error) {
	mounts := map[string]string{}
	for from, to := range opts.Targets {
		mp, created, err := docker.PrepareVolume(ctx, to, fmt.Sprintf("%s/%s/%s", m.Policy, m.Source, m.ID), opts.Overwrite)
		if err != nil {
			return nil, err
		}
		if created {
			fmt.Fprintf(opts.Out, "created Docker volume %s\n", to)
		}
		note := fmt.Sprintf("restore of volume %s of snapshot %s (policy %s, source %s, host %s) did not finish: do not trust this volume\n", from, m.ID, m.Policy, m.Source, m.Host)
		if err := os.WriteFile(filepath.Join(mp, incompleteMarker), []byte(note), 0o600); err != nil {
			return nil, fmt.Errorf("volume %s: %w", to, err)
		}
		mounts[from] = mp
	}
	return mounts, nil
}

// LoadTarget is the database server LoadDumps loads into.
type LoadTarget struct {
	// Host and Port, or Socket (a directory for PostgreSQL, a socket file
	// for MySQL).
	Host   string
	Port   int
	Socket string
	User   string
	// PasswordFile holds the password (mode 0600).
	PasswordFile string
	// Databases maps the databases to load to the names they get; nil
	// loads all under their own names.
	Databases map[string]string
	// Globals loads roles and tablespaces (PostgreSQL) or users and grants
	// (MySQL) first.
	Globals bool
	// Overwrite loads into databases that already have tables.
	Overwrite bool
	// Out gets the output of the load tools.
	Out io.Writer
}

// LoadDumps loads the database dumps of snapshot m, restored into dir,
// into the server t names. It returns the databases loaded and notes for
// the user; a snapshot of another kind than postgres or mysql loads
// nothing.
func LoadDumps(ctx context.Context, dir string, m *v1.SnapshotManifest, t LoadTarget) (loaded, notes []string, err error) {
	switch m.SourceKind {
	case "postgres":
		host := t.Host
		if t.Socket != "" {
			host = t.Socket // libpq takes a socket directory as the host
		}
		res, err := postgres.Load(ctx, dir, m, postgres.LoadOptions{
			Host: host, Port: t.Port, User: t.User, PasswordFile: t.PasswordFile,
			Databases: t.Databases, Globals: t.Globals, Overwrite: t.Overwrite, Out: t.Out,
		})
		return res.Loaded, res.Notes, err
	case "mysql":
		res, err := mysql.Load(ctx, dir, m, mysql.LoadOptions{
			Host: t.Host, Port: t.Port, Socket: t.Socket, User: t.User, PasswordFile: t.PasswordFile,
			Databases: t.Databases, Globals: t.Globals, Overwrite: t.Overwrite, Out: t.Out,
		})
		return res.Loaded, res.Notes, err
	}
	return nil, nil, nil
}
