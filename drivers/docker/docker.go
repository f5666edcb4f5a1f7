// Package docker backs up Docker volumes through the Docker Engine API, and
// restores them into a volume again.
//
// The engine is the one DOCKER_HOST names (the local socket by default);
// the API version is negotiated, so old engines work. A volume is read from
// its mount point on this host, so the agent runs on the Docker host, as
// root. Each volume becomes one data object VOLUME.tar, a POSIX tar like a
// files source's whose entries are the volume's content below a directory
// named after the volume (VOLUME/, VOLUME/file, ...). Owners are stored by
// number only: user names of the host mean nothing inside a container.
//
// With stopContainers, the running containers that use the volumes are
// stopped (with their own stop signal and timeout) before the copy and
// started again after it, also when it fails, in reverse order.
package docker

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"golang.org/x/sync/errgroup"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/files"
	"github.com/aegis-backup/aegis/drivers/internal/dumptool"
)

// ObjectExt and ObjectFormat describe the data objects of a volume.
const (
	ObjectExt    = ".tar"
	ObjectFormat = "tar"
)

// Meta keys recorded in the snapshot manifest.
const (
	MetaEngineVersion     = "dockerVersion"
	MetaVolumes           = "volumes"
	MetaUsedBy            = "usedBy"
	MetaStoppedContainers = "stoppedContainers"
)

// restartTimeout bounds starting the stopped containers again, which is
// done even when the run is cancelled.
const restartTimeout = 2 * time.Minute

// Options tunes the driver. The zero value is ready to use.
type Options struct {
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
}

// Source archives the Docker volumes of a DockerVolumeSource.
type Source struct {
	spec v1.DockerVolumeSource
	opts Options
}

// New returns a Source for spec.
func New(spec v1.DockerVolumeSource, opts Options) *Source {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Source{spec: spec, opts: opts}
}

// NewClient connects to the Docker engine of the environment (DOCKER_HOST,
// or the local socket), negotiating the API version.
func NewClient() (*client.Client, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker engine: %w", err)
	}
	return cli, nil
}

// volumeName is what the engine accepts as a volume name.
var volumeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// Backup archives each volume of the source into its own object, and
// records the engine version, the volumes, the containers that use them and
// the containers it stopped (with how long each was down) in the stats'
// Meta. No volume matching, an engine that does not answer, a mount point
// this host cannot read, or a container that cannot be stopped fails it;
// a container that cannot be started again is a warning, since the backup
// itself is good.
//
// The results are named so that the deferred restart of stopped containers
// adds its warnings to what the caller gets.
func (s *Source) Backup(ctx context.Context, out drivers.ObjectWriter) (stats drivers.SourceStats, err error) {
	log := s.opts.Logger
	cli, err := NewClient()
	if err != nil {
		return stats, err
	}
	defer cli.Close()
	ver, err := cli.ServerVersion(ctx)
	if err != nil {
		return stats, fmt.Errorf("docker engine: %w", err)
	}
	vols, err := s.volumes(ctx, cli)
	if err != nil {
		return stats, err
	}
	names, err := resolveMountpoints(vols)
	if err != nil {
		return stats, err
	}
	users, err := containersUsing(ctx, cli, names)
	if err != nil {
		return stats, err
	}
	stats.Meta = backupMeta(ver.Version, names, users)

	if s.spec.StopContainers {
		var stopped []stoppedCtr
		stopped, err = stopAll(ctx, cli, log, runningOnly(users))
		defer func() {
			// Also when the copy failed, or the run was cancelled.
			summary, warnings := startAll(ctx, cli, log, stopped)
			if summary != "" {
				stats.Meta[MetaStoppedContainers] = summary
			}
			stats.Warnings = append(stats.Warnings, warnings...)
		}()
		if err != nil {
			return stats, err
		}
	}

	err = s.archiveAll(ctx, out, vols, &stats)
	return stats, err
}

// resolveMountpoints checks, before anything is stopped, that every volume
// has a valid name and a mount point this host can read, and replaces each
// mount point by its real path, since the tar entries are renamed from it.
// It returns the volumes' names.
func resolveMountpoints(vols []volume.Volume) ([]string, error) {
	var names []string
	for i, v := range vols {
		if !volumeName.MatchString(v.Name) {
			return nil, fmt.Errorf("volume %q: not a valid volume name", v.Name)
		}
		mp, err := filepath.EvalSymlinks(v.Mountpoint)
		if err == nil {
			var fi os.FileInfo
			if fi, err = os.Stat(mp); err == nil && !fi.IsDir() {
				err = errors.New("not a directory")
			}
		}
		if err != nil {
			return nil, fmt.Errorf("volume %s (driver %s): its mount point %s cannot be read on this host (aegis-agent must run on the Docker host, as root): %w", v.Name, v.Driver, v.Mountpoint, err)
		}
		vols[i].Mountpoint = mp
		names = append(names, v.Name)
	}
	return names, nil
}

// backupMeta is the Meta recorded before the copy: the engine version, the
// volumes and, if any, the containers that use them with their state, so a
// restore can tell what was running at the time.
func backupMeta(engineVersion string, names []string, users []ctr) map[string]string {
	meta := map[string]string{
		MetaEngineVersion: engineVersion,
		MetaVolumes:       strings.Join(names, ","),
	}
	if len(users) > 0 {
		var u []string
		for _, c := range users {
			u = append(u, fmt.Sprintf("%s (%s)", c.name, c.state))
		}
		meta[MetaUsedBy] = strings.Join(u, ", ")
	}
	return meta
}

// runningOnly keeps the running containers of cs: only those are stopped
// for the copy, and so started again after it.
func runningOnly(cs []ctr) []ctr {
	var running []ctr
	for _, c := range cs {
		if c.state == "running" {
			running = append(running, c)
		}
	}
	return running
}

// archiveAll archives each volume into its object, adding to stats as it
// goes, and stops at the first volume that fails.
func (s *Source) archiveAll(ctx context.Context, out drivers.ObjectWriter, vols []volume.Volume, stats *drivers.SourceStats) error {
	for _, v := range vols {
		st, err := s.archive(ctx, out, v)
		stats.Files += st.Files
		stats.BytesRead += st.BytesRead
		stats.Warnings = append(stats.Warnings, st.Warnings...)
		if err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
		s.opts.Logger.Info("docker: volume archived", "volume", v.Name, "files", st.Files, "bytes", st.BytesRead)
	}
	return nil
}

// volumes resolves the source's volume name or label selector.
func (s *Source) volumes(ctx context.Context, cli *client.Client) ([]volume.Volume, error) {
	if s.spec.Name != "" {
		v, err := cli.VolumeInspect(ctx, s.spec.Name)
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", s.spec.Name, err)
		}
		return []volume.Volume{v}, nil
	}
	if len(s.spec.Selector) == 0 {
		return nil, drivers.Permanent(errors.New("dockerVolume: set name or selector"))
	}
	args := filters.NewArgs()
	var sel []string
	for k, v := range s.spec.Selector {
		args.Add("label", k+"="+v)
		sel = append(sel, k+"="+v)
	}
	sort.Strings(sel)
	resp, err := cli.VolumeList(ctx, volume.ListOptions{Filters: args})
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	var out []volume.Volume
	for _, v := range resp.Volumes {
		if v != nil {
			out = append(out, *v)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no volume matches the selector %s", strings.Join(sel, ","))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ctr is a container that uses one of the volumes.
type ctr struct {
	id, name, state string
}

// containersUsing lists the containers (running or not) that mount one of
// the volumes, sorted by name.
func containersUsing(ctx context.Context, cli *client.Client, vols []string) ([]ctr, error) {
	seen := map[string]bool{}
	var out []ctr
	for _, v := range vols {
		list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("volume", v))})
		if err != nil {
			return nil, fmt.Errorf("list the containers using volume %s: %w", v, err)
		}
		for _, c := range list {
			if seen[c.ID] {
				continue
			}
			seen[c.ID] = true
			name := c.ID[:min(12, len(c.ID))]
			if len(c.Names) > 0 {
				name = strings.TrimPrefix(c.Names[0], "/")
			}
			out = append(out, ctr{id: c.ID, name: name, state: string(c.State)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// stoppedCtr is a container stopped for the copy.
type stoppedCtr struct {
	ctr
	at time.Time
}

// stopAll stops cs in order; on a failure it returns those it stopped so
// far, for the caller to start again.
func stopAll(ctx context.Context, cli *client.Client, log *slog.Logger, cs []ctr) ([]stoppedCtr, error) {
	var stopped []stoppedCtr
	for _, c := range cs {
		at := time.Now()
		if err := cli.ContainerStop(ctx, c.id, container.StopOptions{}); err != nil {
			return stopped, fmt.Errorf("stop container %s: %w", c.name, err)
		}
		log.Info("docker: container stopped for the copy", "container", c.name, "took", time.Since(at).Round(time.Millisecond))
		stopped = append(stopped, stoppedCtr{ctr: c, at: at})
	}
	return stopped, nil
}

// startAll starts the stopped containers again, in reverse order, even
// when ctx is done. It returns the summary for the status ("web (down
// 3.2s)") and a warning per container that did not start.
func startAll(ctx context.Context, cli *client.Client, log *slog.Logger, stopped []stoppedCtr) (string, []string) {
	if len(stopped) == 0 {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restartTimeout)
	defer cancel()
	parts := make([]string, len(stopped))
	var warnings []string
	for i := len(stopped) - 1; i >= 0; i-- {
		c := stopped[i]
		if err := cli.ContainerStart(ctx, c.id, container.StartOptions{}); err != nil {
			log.Error("docker: container not started again", "container", c.name, "err", err)
			warnings = append(warnings, fmt.Sprintf("container %s was stopped for the copy and could not be started again: %v", c.name, err))
			parts[i] = fmt.Sprintf("%s (not started again)", c.name)
			continue
		}
		down := time.Since(c.at).Round(10 * time.Millisecond)
		log.Info("docker: container started again", "container", c.name, "down", down)
		parts[i] = fmt.Sprintf("%s (down %s)", c.name, down)
	}
	return strings.Join(parts, ", "), warnings
}

// archive writes the volume v into its object.
func (s *Source) archive(ctx context.Context, out drivers.ObjectWriter, v volume.Volume) (drivers.SourceStats, error) {
	name := v.Name + ObjectExt
	w, err := out.Create(ctx, name, ObjectFormat)
	if err != nil {
		return drivers.SourceStats{}, fmt.Errorf("create %s: %w", name, err)
	}
	var st drivers.SourceStats
	pr, pw := io.Pipe()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		st, err = files.WriteTar(gctx, pw, v1.FilesSource{Paths: []string{v.Mountpoint}}, files.Options{Logger: s.opts.Logger})
		pw.CloseWithError(err)
		return err
	})
	g.Go(func() error {
		err := rebaseTar(pr, w, strings.TrimPrefix(v.Mountpoint, "/"), v.Name)
		pr.CloseWithError(err)
		return err
	})
	if err := g.Wait(); err != nil {
		dumptool.Abort(w, err)
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return st, err
	}
	if err := w.Close(); err != nil {
		return st, fmt.Errorf("close %s: %w", name, err)
	}
	return st, nil
}

// rebaseTar copies the tar stream r to w, keeping only the entries at or
// below root and renaming them from root to prefix; owners are kept by
// number only.
func rebaseTar(r io.Reader, w io.Writer, root, prefix string) error {
	tr := tar.NewReader(r)
	bw := bufio.NewWriterSize(w, 256<<10)
	tw := tar.NewWriter(bw)
	buf := make([]byte, 1<<20)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		name, ok := rebase(hdr.Name, root, prefix)
		if !ok {
			continue // a directory above the volume
		}
		hdr.Name = name
		if hdr.Typeflag == tar.TypeLink {
			if hdr.Linkname, ok = rebase(hdr.Linkname, root, prefix); !ok {
				return fmt.Errorf("hard link %s points outside the volume", name)
			}
		}
		hdr.Uname, hdr.Gname = "", ""
		delete(hdr.PAXRecords, "path")
		delete(hdr.PAXRecords, "linkpath")
		delete(hdr.PAXRecords, "uname")
		delete(hdr.PAXRecords, "gname")
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write tar: %w", err)
		}
		if _, err := io.CopyBuffer(tw, tr, buf); err != nil {
			return fmt.Errorf("write tar: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write tar: %w", err)
	}
	return bw.Flush()
}

// rebase renames name from below root to below prefix; a directory keeps
// its trailing slash.
func rebase(name, root, prefix string) (string, bool) {
	n := strings.TrimSuffix(name, "/")
	slash := ""
	if n != name {
		slash = "/"
	}
	switch {
	case n == root:
		return prefix + "/", true
	case strings.HasPrefix(n, root+"/"):
		return prefix + "/" + n[len(root)+1:] + slash, true
	}
	return "", false
}

// VolumeObjects returns the names of the volumes in a dockerVolume
// snapshot.
func VolumeObjects(m *v1.SnapshotManifest) []string {
	var out []string
	for _, ob := range m.Objects {
		if v, ok := strings.CutSuffix(ob.Name, ObjectExt); ok && ob.Format == ObjectFormat {
			out = append(out, v)
		}
	}
	return slices.Clip(out)
}

var _ drivers.Source = (*Source)(nil)
