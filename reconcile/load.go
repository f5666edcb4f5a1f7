package reconcile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

// Config is the desired world as read from manifest files.
type Config struct {
	Files   []string
	Objects []*v1.Object
	Errors  v1.ErrorList
	// lastValid holds, by Kind/name, the last valid version the state
	// store recorded of objects that are invalid now (or whose file no
	// longer parses): see LoadConfigWithState.
	lastValid map[string]*v1.Object
}

// LoadConfigWithState reads the manifests as LoadConfig does, then looks
// up in the state store under stateDir the last valid version of every
// object that is invalid today, so that Policy and AllDestinations can
// still name its destinations: listing and restoring snapshots never depend
// on today's manifest being valid. A missing or unreadable store only
// means there is nothing to fall back on.
func LoadConfigWithState(configDir, stateDir string) (*Config, error) {
	cfg, err := LoadConfig(configDir)
	if err != nil {
		return nil, err
	}
	if stateDir == "" {
		return cfg, nil
	}
	if _, err := os.Stat(filepath.Join(stateDir, "state.db")); err != nil {
		return cfg, nil
	}
	recs, err := (&Store{path: filepath.Join(stateDir, "state.db")}).Records()
	if err != nil {
		return cfg, nil
	}
	cfg.attachLastValid(recs)
	return cfg, nil
}

func (c *Config) attachLastValid(recs map[string]ObjectRecord) {
	c.lastValid = map[string]*v1.Object{}
	valid := map[string]bool{}
	for _, o := range c.Objects {
		if c.IsValid(o) {
			valid[o.Kind+"/"+o.Name] = true
		}
	}
	for key, r := range recs {
		if r.LastValid == nil || valid[key] {
			continue
		}
		kind, name, _ := strings.Cut(key, "/")
		c.lastValid[key] = r.LastValid.object(kind, name)
	}
}

// LastValid returns the recorded last valid version of an object that is
// invalid (or gone because its file no longer parses) today, or nil.
func (c *Config) LastValid(kind, name string) *v1.Object {
	return c.lastValid[kind+"/"+name]
}

// IsValid reports whether o has no problem.
func (c *Config) IsValid(o *v1.Object) bool { return len(c.ObjectErrors(o)) == 0 }

// IsManifestFile reports whether name is a manifest (not a status sidecar,
// not an editor's temporary file).
func IsManifestFile(name string) bool {
	base := filepath.Base(name)
	if strings.HasPrefix(base, ".") || strings.HasSuffix(base, "~") {
		return false
	}
	if strings.HasSuffix(base, ".status.yaml") || strings.HasSuffix(base, ".status.yml") {
		return false
	}
	return strings.HasSuffix(base, ".yaml") || strings.HasSuffix(base, ".yml")
}

// osFiles lets validation look at referenced files.
type osFiles struct{}

func (osFiles) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

// ReadFile lets validation look into recipients files (an age identity
// where recipients belong).
func (osFiles) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// LoadOptions change what LoadConfigWith checks.
type LoadOptions struct {
	// Offline checks schema, names, references and cross-object rules but
	// no file the manifests reference: GitOps CI on a machine that is not
	// the backup host.
	Offline bool
}

// LoadConfig reads and validates the manifests in paths (files, or
// directories whose manifest files are read, not recursively).
//
// A manifest may be a symlink to a regular file (a directory laid out by
// GNU stow, a Kubernetes ConfigMap whose files are symlinks through
// ..data). An entry named like a manifest that cannot be read, or is not a
// regular file once its symlinks are followed (a loop, a directory, a
// device), is a problem of that file in cfg.Errors, never skipped in
// silence. Only a path given in paths that cannot be read at all is an
// error of LoadConfig.
func LoadConfig(paths ...string) (*Config, error) {
	return LoadConfigWith(LoadOptions{}, paths...)
}

// LoadConfigWith is LoadConfig with options.
func LoadConfigWith(opts LoadOptions, paths ...string) (*Config, error) {
	cfg := &Config{}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			cfg.Files = append(cfg.Files, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if IsManifestFile(e.Name()) {
				cfg.Files = append(cfg.Files, filepath.Join(p, e.Name()))
			}
		}
	}
	sort.Strings(cfg.Files)
	for _, f := range cfg.Files {
		data, err := readManifest(f)
		if err != nil {
			cfg.Errors = append(cfg.Errors, v1.FieldError{File: f, Message: err.Error()})
			continue
		}
		objs, errs := v1.Decode(f, data)
		cfg.Objects = append(cfg.Objects, objs...)
		cfg.Errors = append(cfg.Errors, errs...)
	}
	cfg.Errors = append(cfg.Errors, v1.ValidateWith(cfg.Objects, v1.ValidateOptions{Files: osFiles{}, Offline: opts.Offline, AgentUID: os.Geteuid()})...)
	sort.SliceStable(cfg.Errors, func(i, j int) bool {
		a, b := cfg.Errors[i], cfg.Errors[j]
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return cfg, nil
}

// readManifest reads a manifest file, following symlinks to a regular
// file only.
func readManifest(name string) ([]byte, error) {
	fi, err := os.Stat(name)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("cannot read this manifest: its symlinks form a loop")
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("cannot read this manifest: it is a symlink to a missing file")
		}
		return nil, fmt.Errorf("cannot read this manifest: %w", unwrapPath(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("cannot read this manifest: it is not a regular file (%s)", describeMode(fi.Mode()))
	}
	if fe, over := v1.CheckManifestSize(name, fi.Size()); over {
		// Never read a file that big: say so instead.
		return nil, errors.New(fe.Message)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("cannot read this manifest: %w", unwrapPath(err))
	}
	return data, nil
}

// unwrapPath drops the file name a *PathError repeats: the error is
// reported against the file already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func describeMode(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return m.Type().String()
}

// ObjectErrors returns the problems of one object, including those of its
// file that belong to no object (a YAML syntax error spoils the whole file).
func (c *Config) ObjectErrors(o *v1.Object) v1.ErrorList {
	var out v1.ErrorList
	for _, e := range c.Errors {
		if (e.Kind == o.Kind && e.Name == o.Name) || (e.File == o.File && e.Name == "") {
			out = append(out, e)
		}
	}
	return out
}

// Valid returns the valid policies and destinations by name.
func (c *Config) Valid() (map[string]*v1.BackupPolicy, map[string]*v1.Destination) {
	pols := map[string]*v1.BackupPolicy{}
	dests := map[string]*v1.Destination{}
	for _, o := range c.Objects {
		if len(c.ObjectErrors(o)) > 0 {
			continue
		}
		switch {
		case o.Policy != nil:
			pols[o.Name] = o.Policy
		case o.Destination != nil:
			dests[o.Name] = o.Destination
		}
	}
	return pols, dests
}

// AllDestinations returns every destination by name, valid or not:
// listing and restoring only need to reach it. For one invalid today, the
// last valid version recorded (LoadConfigWithState) wins over today's.
func (c *Config) AllDestinations() map[string]*v1.Destination {
	out := map[string]*v1.Destination{}
	for _, o := range c.Objects {
		if o.Destination != nil {
			out[o.Name] = o.Destination
		}
	}
	for _, o := range c.lastValid {
		if o.Destination != nil {
			out[o.Name] = o.Destination
		}
	}
	return out
}

// Policy returns the policy of that name: the valid one, else its last
// valid version recorded (LoadConfigWithState), else the decoded invalid
// one; nil when there is none.
func (c *Config) Policy(name string) *v1.BackupPolicy {
	var decoded *v1.BackupPolicy
	for _, o := range c.Objects {
		if o.Policy != nil && o.Name == name {
			if c.IsValid(o) {
				return o.Policy
			}
			decoded = o.Policy
		}
	}
	if lv := c.LastValid(v1.KindBackupPolicy, name); lv != nil && lv.Policy != nil {
		return lv.Policy
	}
	return decoded
}
