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

// sources maps each kind of source (v1.Source.Driver) to its driver. Every
// other function here is derived from it and from destinations.
var sources = map[string]func(src v1.Source, opts Options) drivers.Source{
	"files": func(src v1.Source, o Options) drivers.Source {
		return files.New(*src.Files, files.Options{Logger: o.Logger})
	},
	"postgres": func(src v1.Source, o Options) drivers.Source {
		return postgres.New(*src.Postgres, postgres.Options{Logger: o.Logger})
	},
	"mysql": func(src v1.Source, o Options) drivers.Source {
		return mysql.New(*src.MySQL, mysql.Options{Logger: o.Logger})
	},
	"dockerVolume": func(src v1.Source, o Options) drivers.Source {
		return docker.New(*src.DockerVolume, docker.Options{Logger: o.Logger})
	},
	"system": func(src v1.Source, o Options) drivers.Source {
		return system.New(*src.System, system.Options{Logger: o.Logger})
	},
}

// destinations maps each kind of destination (v1.DestinationSpec.Driver)
// to its driver. Remote ones come wrapped in the retry decorator.
var destinations = map[string]func(d *v1.Destination, opts Options) (drivers.Destination, error){
	"local": func(d *v1.Destination, _ Options) (drivers.Destination, error) {
		return local.New(d.Spec.Local.Path), nil
	},
	"s3": func(d *v1.Destination, o Options) (drivers.Destination, error) {
		s, err := s3.New(*d.Spec.S3, s3.Options{Logger: o.Logger})
		return retried(s, err, o)
	},
	"sftp": func(d *v1.Destination, o Options) (drivers.Destination, error) {
		s, err := sftp.New(*d.Spec.SFTP, sftp.Options{Logger: o.Logger})
		return retried(s, err, o)
	},
	"ftp": func(d *v1.Destination, o Options) (drivers.Destination, error) {
		s, err := ftp.New(*d.Spec.FTP, ftp.Options{Logger: o.Logger})
		return retried(s, err, o)
	},
}

// retried wraps a remote destination in the retry decorator.
func retried[T drivers.Destination](d T, err error, o Options) (drivers.Destination, error) {
	if err != nil {
		return nil, err
	}
	return retry.Wrap(d, retry.Policy{Logger: o.Logger}), nil
}

// Source returns the driver for a policy's source. A driver this build
// does not have yet gives an error wrapping drivers.ErrNotSupported.
func Source(src v1.Source, opts Options) (drivers.Source, error) {
	kind := src.Driver()
	if kind == "" {
		return nil, fmt.Errorf("source %s: no driver block set", src.Name)
	}
	newSource, ok := sources[kind]
	if !ok {
		return nil, fmt.Errorf("source %s: driver %s is %w by this build of aegis-agent", src.Name, kind, drivers.ErrNotSupported)
	}
	return newSource(src, opts), nil
}

// Destination returns the driver for a Destination, limited to the rates
// of its spec.bandwidth (ratelimit.Describe says which is in force). A
// driver this build does not have yet gives an error wrapping
// drivers.ErrNotSupported.
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
	kind := d.Spec.Driver()
	if kind == "" {
		return nil, fmt.Errorf("destination %s: no driver block set", d.Metadata.Name)
	}
	newDestination, ok := destinations[kind]
	if !ok {
		return nil, fmt.Errorf("destination %s: driver %s is %w by this build of aegis-agent", d.Metadata.Name, kind, drivers.ErrNotSupported)
	}
	dest, err := newDestination(d, opts)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", d.Metadata.Name, err)
	}
	return dest, nil
}

// Unsupported lists the parts of a policy (and of the destinations it
// names) that this build cannot run yet, as messages for its status.
func Unsupported(p *v1.BackupPolicy, dests map[string]*v1.Destination) []string {
	var out []string
	for _, s := range p.Spec.Sources {
		if _, ok := sources[s.Driver()]; !ok {
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
	if _, ok := destinations[d.Spec.Driver()]; ok {
		return ""
	}
	return fmt.Sprintf("destination %s: driver %s is not supported yet by this build of aegis-agent", d.Metadata.Name, d.Spec.Driver())
}
