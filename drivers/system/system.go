// Package system backs up the configuration of the host: /etc, the
// crontabs, os-release, the extra paths a policy names, and a summary of
// what is installed and enabled, all in one tar.
//
// The object system.tar is a files-source archive (entries are absolute
// paths without the leading "/") that starts with the directory
// aegis-system/, written by the agent:
//
//   - aegis-system/summary.json: the machine-readable summary (Summary):
//     host name, os-release, kernel, the installed packages, the enabled
//     systemd units, the paths archived;
//   - aegis-system/dpkg-selections.txt (dpkg hosts): `dpkg --get-selections`,
//     which `dpkg --set-selections` takes back;
//   - aegis-system/rpm-packages.txt (rpm hosts): `rpm -qa`.
package system

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/files"
	"github.com/aegis-backup/aegis/drivers/internal/dumptool"
)

// ObjectName is the data object a system source writes.
const ObjectName = "system.tar"

// SummaryDir is the archive directory of what the agent writes, and
// SummaryPath the summary's entry name.
const (
	SummaryDir  = "aegis-system"
	SummaryPath = SummaryDir + "/summary.json"
)

// Meta keys recorded in the snapshot manifest.
const (
	MetaHostname = "hostname"
	MetaOS       = "os"
	MetaPackages = "packages"
	MetaUnits    = "enabledUnits"
)

// basePaths are archived when they exist: the configuration, the users'
// and the system's crontabs (Debian keeps them in /var/spool/cron/crontabs,
// Red Hat in /var/spool/cron), and os-release, which /etc/os-release often
// only links to.
var basePaths = []string{"/etc", "/var/spool/cron", "/usr/lib/os-release"}

// Options tunes the driver. The zero value is ready to use.
type Options struct {
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
}

// Source archives the host's configuration.
type Source struct {
	spec v1.SystemSource
	opts Options
}

// New returns a Source for spec.
func New(spec v1.SystemSource, opts Options) *Source {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Source{spec: spec, opts: opts}
}

// Summary is aegis-system/summary.json.
type Summary struct {
	FormatVersion int               `json:"formatVersion"`
	Time          time.Time         `json:"time"`
	Hostname      string            `json:"hostname"`
	OSRelease     map[string]string `json:"osRelease,omitempty"`
	Kernel        string            `json:"kernel,omitempty"`
	Architecture  string            `json:"architecture,omitempty"`
	// PackageManager is "dpkg", "rpm" or "" when the host has neither.
	PackageManager string    `json:"packageManager,omitempty"`
	Packages       []Package `json:"packages"`
	// EnabledUnits are the systemd unit files in state enabled.
	EnabledUnits []string `json:"enabledUnits"`
	// Paths are the paths archived besides aegis-system/.
	Paths []string `json:"paths"`
	// Warnings are what could not be found out.
	Warnings []string `json:"warnings,omitempty"`
}

// Package is one installed package.
type Package struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	Architecture string `json:"architecture,omitempty"`
}

// Backup writes the summary files, then the archived paths, as one tar. A
// missing extra path fails it, as in a files source; a host without dpkg or
// rpm, or without systemd, gives a warning.
func (s *Source) Backup(ctx context.Context, out drivers.ObjectWriter) (drivers.SourceStats, error) {
	var stats drivers.SourceStats
	sum, extra := s.inspect(ctx)
	var paths []string
	for _, p := range basePaths {
		if _, err := os.Lstat(p); err == nil {
			paths = append(paths, p)
		}
	}
	paths = append(paths, s.spec.ExtraPaths...)
	sort.Strings(paths)
	sum.Paths = slices.Compact(paths)
	stats.Warnings = append(stats.Warnings, sum.Warnings...)
	stats.Meta = map[string]string{
		MetaHostname: sum.Hostname,
		MetaOS:       sum.OSRelease["PRETTY_NAME"],
		MetaPackages: fmt.Sprint(len(sum.Packages)),
		MetaUnits:    fmt.Sprint(len(sum.EnabledUnits)),
	}

	// Check the paths before the object exists: a missing one fails the
	// source without writing anything.
	spec := v1.FilesSource{Paths: sum.Paths}
	for _, p := range sum.Paths {
		if _, err := os.Lstat(p); err != nil {
			return stats, drivers.Permanent(fmt.Errorf("path %s: %w", p, unwrapPath(err)))
		}
	}

	w, err := out.Create(ctx, ObjectName, "tar")
	if err != nil {
		return stats, fmt.Errorf("create %s: %w", ObjectName, err)
	}
	if err := writeSummary(w, sum, extra); err != nil {
		dumptool.Abort(w, err)
		return stats, err
	}
	st, err := files.WriteTar(ctx, w, spec, files.Options{Logger: s.opts.Logger})
	stats.Files, stats.BytesRead = st.Files, st.BytesRead
	stats.Warnings = append(stats.Warnings, st.Warnings...)
	if err != nil {
		dumptool.Abort(w, err)
		return stats, err
	}
	if err := w.Close(); err != nil {
		return stats, fmt.Errorf("close %s: %w", ObjectName, err)
	}
	return stats, nil
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// writeSummary writes aegis-system/ and its files as the first entries of
// a tar stream, without ending it: files.WriteTar appends the rest, and
// the end of the archive.
func writeSummary(w io.Writer, sum *Summary, extra map[string][]byte) error {
	body, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return err
	}
	body = append(body, '\n')
	tw := tar.NewWriter(w)
	now := sum.Time
	if err := tw.WriteHeader(&tar.Header{Name: SummaryDir + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now, Format: tar.FormatPAX}); err != nil {
		return fmt.Errorf("write tar: %w", err)
	}
	entries := map[string][]byte{"summary.json": body}
	for k, v := range extra {
		entries[k] = v
	}
	var names []string
	for k := range entries {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, n := range names {
		b := entries[n]
		h := &tar.Header{Name: SummaryDir + "/" + n, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(b)), ModTime: now, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("write tar: %w", err)
		}
		if _, err := tw.Write(b); err != nil {
			return fmt.Errorf("write tar: %w", err)
		}
	}
	// Flush pads the last entry; Close would end the archive.
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write tar: %w", err)
	}
	return nil
}

// inspect gathers the summary, and the extra files for aegis-system/.
func (s *Source) inspect(ctx context.Context) (*Summary, map[string][]byte) {
	sum := &Summary{FormatVersion: 1, Time: time.Now().UTC(), Packages: []Package{}, EnabledUnits: []string{}}
	extra := map[string][]byte{}
	warn := func(format string, a ...any) { sum.Warnings = append(sum.Warnings, fmt.Sprintf(format, a...)) }

	sum.Hostname, _ = os.Hostname()
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if b, err := os.ReadFile(p); err == nil {
			sum.OSRelease = ParseOSRelease(string(b))
			break
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		sum.Kernel = unix.ByteSliceToString(u.Release[:])
		sum.Architecture = unix.ByteSliceToString(u.Machine[:])
	}

	switch {
	case lookPath("dpkg-query") != "":
		sum.PackageManager = "dpkg"
		out, err := run(ctx, "dpkg-query", "-W", "-f=${db:Status-Abbrev}\t${binary:Package}\t${Version}\t${Architecture}\n")
		if err != nil {
			warn("installed packages: %v", err)
			break
		}
		sum.Packages = ParseDpkg(out)
		if sel, err := run(ctx, "dpkg", "--get-selections"); err == nil {
			extra["dpkg-selections.txt"] = sel
		} else {
			warn("dpkg selections: %v", err)
		}
	case lookPath("rpm") != "":
		sum.PackageManager = "rpm"
		out, err := run(ctx, "rpm", "-qa", "--qf", "%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\t%{ARCH}\n")
		if err != nil {
			warn("installed packages: %v", err)
			break
		}
		sum.Packages = ParseRPM(out)
		var names bytes.Buffer
		for _, p := range sum.Packages {
			fmt.Fprintf(&names, "%s-%s.%s\n", p.Name, strings.TrimPrefix(p.Version, "0:"), p.Architecture)
		}
		extra["rpm-packages.txt"] = names.Bytes()
	default:
		warn("no package manager found (neither dpkg nor rpm): the package list is empty")
	}

	units, err := enabledUnits(ctx)
	if err != nil {
		warn("enabled systemd units: %v", err)
	}
	sum.EnabledUnits = append(sum.EnabledUnits, units...)
	return sum, extra
}

// enabledUnits lists the enabled unit files: from systemctl, which reads
// the unit files even where systemd does not run, else from the .wants
// directories of /etc/systemd/system.
func enabledUnits(ctx context.Context) ([]string, error) {
	if lookPath("systemctl") != "" {
		out, err := run(ctx, "systemctl", "list-unit-files", "--state=enabled", "--no-legend", "--no-pager")
		if err == nil {
			return ParseUnitFiles(out), nil
		}
	}
	dirs, _ := filepath.Glob("/etc/systemd/system/*.wants")
	if len(dirs) == 0 {
		return nil, fmt.Errorf("no systemctl and no /etc/systemd/system/*.wants: not a systemd host")
	}
	seen := map[string]bool{}
	for _, d := range dirs {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			seen[e.Name()] = true
		}
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

func lookPath(name string) string {
	p, _ := exec.LookPath(name)
	return p
}

func run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	path, err := dumptool.Find(tool)
	if err != nil {
		return nil, err
	}
	out, _, err := dumptool.Output(ctx, dumptool.Cmd{Path: path, Args: args, Env: []string{"LC_ALL=C"}}, 64<<20)
	return out, err
}

// ParseOSRelease parses os-release(5): KEY=value lines, values optionally
// quoted.
func ParseOSRelease(s string) map[string]string {
	out := map[string]string{}
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSpace(line)
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.HasPrefix(k, "#") {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
			v = strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\$`, `$`, "\\`", "`").Replace(v)
		}
		out[k] = v
	}
	return out
}

// ParseDpkg parses `dpkg-query -W -f '${db:Status-Abbrev}\t${binary:Package}\t${Version}\t${Architecture}\n'`,
// keeping the installed packages (status "ii" or "hi").
func ParseDpkg(out []byte) []Package {
	pkgs := []Package{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 4 {
			continue
		}
		status := strings.TrimSpace(f[0])
		if len(status) < 2 || status[1] != 'i' {
			continue
		}
		pkgs = append(pkgs, Package{Name: f[1], Version: f[2], Architecture: f[3]})
	}
	return pkgs
}

// ParseRPM parses `rpm -qa --qf '%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\t%{ARCH}\n'`.
func ParseRPM(out []byte) []Package {
	pkgs := []Package{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 {
			continue
		}
		pkgs = append(pkgs, Package{Name: f[0], Version: f[1], Architecture: f[2]})
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	return pkgs
}

// ParseUnitFiles parses `systemctl list-unit-files --no-legend`: the first
// column of each line.
func ParseUnitFiles(out []byte) []string {
	units := []string{}
	for line := range strings.SplitSeq(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			units = append(units, f[0])
		}
	}
	sort.Strings(units)
	return units
}

var _ drivers.Source = (*Source)(nil)
