// Package registry lists every driver of this build in one place: it turns
// a source or destination spec into the driver that serves it.
package registry

import (
	"fmt"
	"log/slog"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/docker"
	"github.com/aegis-backup/aegis/drivers/files"
	"github.com/aegis-backup/aegis/drivers/ftp"
	"github.com/aegis-backup/aegis/drivers/local"
	"github.com/aegis-backup/aegis/drivers/mysql"
	"github.com/aegis-backup/aegis/drivers/postgres"
	"github.com/aegis-backup/aegis/drivers/ratelimit"
	"github.com/aegis-backup/aegis/drivers/retry"
	"github.com/aegis-backup/aegis/drivers/s3"
	"github.com/aegis-backup/aegis/drivers/sftp"
	"github.com/aegis-backup/aegis/drivers/system"
)

// Options are what drivers may need from the agent.
type Options struct {
	Logger *slog.Logger
}

// Source returns the driver for a policy's source. A driver this build
// does not have yet gives an error wrapping drivers.ErrNotSupported.
func Source(src v1.Source, opts Options) (drivers.Source, error) {
	switch kind := src.Driver(); kind {
	case "files":
		return files.New(*src.Files, files.Options{Logger: opts.Logger}), nil
	case "postgres":
		return postgres.New(*src.Postgres, postgres.Options{Logger: opts.Logger}), nil
	case "mysql":
		return mysql.New(*src.MySQL, mysql.Options{Logger: opts.Logger}), nil
	case "dockerVolume":
		return docker.New(*src.DockerVolume, docker.Options{Logger: opts.Logger}), nil
	case "system":
		return system.New(*src.System, system.Options{Logger: opts.Logger}), nil
	case "":
		return nil, fmt.Errorf("source %s: no driver block set", src.Name)
	default:
		return nil, fmt.Errorf("source %s: driver %s is %w by this build of aegis-agent", src.Name, kind, drivers.ErrNotSupported)
	}
}

// Destination returns the driver for a Destination, limited to the rates
// of its spec.bandwidth (ratelimit.Describe says which is in force).
func Destination(d *v1.Destination, opts Options) (drivers.Destination, error) {
	dst, err := destinationDriver(d, opts)
	if err != nil || d.Spec.Bandwidth == nil {
		return dst, err
	}
	sched, err := v1.CompileBandwidth(d.Spec.Bandwidth)
	if err != nil {
		dst.Close()
		return nil, fmt.Errorf("destination %s: %w", d.Metadata.Name, err)
	}
	return ratelimit.New(dst, sched, ratelimit.Options{}), nil
}

func destinationDriver(d *v1.Destination, opts Options) (drivers.Destination, error) {
	switch kind := d.Spec.Driver(); kind {
	case "local":
		return local.New(d.Spec.Local.Path), nil
	case "s3":
		s, err := s3.New(*d.Spec.S3, s3.Options{Logger: opts.Logger})
		if err != nil {
			return nil, fmt.Errorf("destination %s: %w", d.Metadata.Name, err)
		}
		return retry.Wrap(s, retry.Policy{Logger: opts.Logger}), nil
	case "sftp":
		s, err := sftp.New(*d.Spec.SFTP, sftp.Options{Logger: opts.Logger})
		if err != nil {
			return nil, fmt.Errorf("destination %s: %w", d.Metadata.Name, err)
		}
		return retry.Wrap(s, retry.Policy{Logger: opts.Logger}), nil
	case "ftp":
		s, err := ftp.New(*d.Spec.FTP, ftp.Options{Logger: opts.Logger})
		if err != nil {
			return nil, fmt.Errorf("destination %s: %w", d.Metadata.Name, err)
		}
		return retry.Wrap(s, retry.Policy{Logger: opts.Logger}), nil
	case "":
		return nil, fmt.Errorf("destination %s: no driver block set", d.Metadata.Name)
	default:
		return nil, fmt.Errorf("destination %s: driver %s is %w by this build of aegis-agent", d.Metadata.Name, kind, drivers.ErrNotSupported)
	}
}

// Unsupported lists the parts of a policy (and of the destinations it
// names) that this build cannot run yet, as messages for its status.
func Unsupported(p *v1.BackupPolicy, dests map[string]*v1.Destination) []string {
	var out []string
	for _, s := range p.Spec.Sources {
		switch s.Driver() {
		case "files", "postgres", "mysql", "dockerVolume", "system":
		default:
			out = append(out, fmt.Sprintf("source %s: driver %s is not supported yet by this build of aegis-agent", s.Name, s.Driver()))
		}
	}
	for _, name := range p.Spec.Destinations {
		d, ok := dests[name]
		if !ok {
			continue
		}
		if msg := UnsupportedDestination(d); msg != "" {
			out = append(out, msg)
		}
	}
	return out
}

// UnsupportedDestination says why a destination cannot be used by this
// build, or returns "".
func UnsupportedDestination(d *v1.Destination) string {
	switch d.Spec.Driver() {
	case "local", "s3", "sftp", "ftp":
		return ""
	}
	return fmt.Sprintf("destination %s: driver %s is not supported yet by this build of aegis-agent", d.Metadata.Name, d.Spec.Driver())
}
