package observe

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The files the agent keeps in its log directory. Only these (and their
// rotated copies and the per-run logs) are ever rotated or removed; anything
// else in the directory is left alone.
const (
	AgentLogName     = "agent.log"
	RetentionLogName = "retention.log"
	AuditLogName     = "audit.jsonl"
)

// runLogPrefixes start the names of per-run logs (one file per run).
var runLogPrefixes = []string{"backup-", "restore-", "verify-"}

// LogLimits bound the log directory. A zero field takes its default.
type LogLimits struct {
	// MaxSize is the size at which agent.log, retention.log and
	// audit.jsonl are rotated (default 10 MiB).
	MaxSize int64
	// MaxFiles is how many rotated copies of agent.log and of retention.log
	// are kept (default 5). Rotated copies of audit.jsonl are exempt: they
	// go only when the directory is over MaxTotal, after everything else.
	MaxFiles int
	// MaxAge removes per-run logs and rotated copies (not audit ones) older
	// than this (default 90 days).
	MaxAge time.Duration
	// MaxTotal bounds the disk use of the directory (default 256 MiB): the
	// oldest per-run logs and rotated copies are removed until the files
	// Aegis writes there fit. The live files are never removed, so it must
	// leave room for them: at least 4 × MaxSize.
	MaxTotal int64
}

// Defaults of LogLimits.
const (
	DefaultLogMaxSize  = 10 << 20
	DefaultLogMaxFiles = 5
	DefaultLogMaxAge   = 90 * 24 * time.Hour
	DefaultLogMaxTotal = 256 << 20
)

// WithDefaults fills the zero fields.
func (l LogLimits) WithDefaults() LogLimits {
	if l.MaxSize <= 0 {
		l.MaxSize = DefaultLogMaxSize
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultLogMaxFiles
	}
	if l.MaxAge <= 0 {
		l.MaxAge = DefaultLogMaxAge
	}
	if l.MaxTotal <= 0 {
		l.MaxTotal = DefaultLogMaxTotal
	}
	return l
}

// Check reports limits that cannot hold together.
func (l LogLimits) Check() error {
	l = l.WithDefaults()
	if l.MaxTotal < 4*l.MaxSize {
		return fmt.Errorf("the log directory bound (%s) must be at least 4 times the rotation size (%s): the three live logs alone may reach 3 times it", FormatBytes(l.MaxTotal), FormatBytes(l.MaxSize))
	}
	return nil
}

// ParseByteSize reads sizes such as 512, 64KiB, 10MiB, 1GiB, 10M or 1G
// (K, M, G and T are powers of 1024).
func ParseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	var n int64
	if _, err := fmt.Sscanf(t, "%d", &n); err != nil || n < 0 || fmt.Sprint(n) != t {
		return 0, fmt.Errorf("invalid size %q: use a number with an optional unit, such as 10MiB or 1GiB", s)
	}
	return n * mult, nil
}

// FormatBytes prints n in IEC units: 512 B, 1.5 KiB, 10.0 MiB.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// rotateLockName is taken (flock) by whoever rotates or prunes, so that an
// agent and a command run by hand never rotate the same file twice.
const rotateLockName = ".aegis-logs.lock"

// RotatingFile is an append-only log file that rotates itself when it
// reaches its size bound: the full file is renamed NAME.TIME.EXT and a new
// one started. Several processes may append to the same file: each notices
// a rotation made by another and reopens. Safe for concurrent use.
type RotatingFile struct {
	dir, name string
	limits    LogLimits
	now       func() time.Time

	mu   sync.Mutex
	f    *os.File
	size int64
}

// OpenRotating opens (creating) dir/name for appending.
func OpenRotating(dir, name string, limits LogLimits, now func() time.Time) (*RotatingFile, error) {
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	r := &RotatingFile{dir: dir, name: name, limits: limits.WithDefaults(), now: now}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

// Path is the live file's name.
func (r *RotatingFile) Path() string { return filepath.Join(r.dir, r.name) }

func (r *RotatingFile) open() error {
	f, err := os.OpenFile(r.Path(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open log %s: %w", r.Path(), err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if r.f != nil {
		r.f.Close()
	}
	r.f, r.size = f, fi.Size()
	return nil
}

// Write appends p (one log record) in a single write, rotating first when p
// would take the file past its bound.
func (r *RotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, os.ErrClosed
	}
	if r.replaced() {
		if err := r.open(); err != nil {
			return 0, err
		}
	}
	if r.size > 0 && r.size+int64(len(p)) > r.limits.MaxSize {
		if err := r.rotate(int64(len(p))); err != nil {
			// Keep logging into the full file rather than lose the record.
			fmt.Fprintf(os.Stderr, "aegis-agent: rotate %s: %v\n", r.Path(), err)
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	return n, err
}

// replaced reports whether the path no longer names the open file (another
// process rotated it).
func (r *RotatingFile) replaced() bool {
	st, err := os.Stat(r.Path())
	if err != nil {
		return true
	}
	fi, err := r.f.Stat()
	if err != nil {
		return true
	}
	if !os.SameFile(st, fi) {
		return true
	}
	r.size = fi.Size() // others append too
	return false
}

// rotate renames the live file under the directory lock, unless another
// process did so meanwhile, then reopens and prunes.
func (r *RotatingFile) rotate(pending int64) error {
	unlock, err := lockLogDir(r.dir)
	if err != nil {
		return err
	}
	defer unlock()
	if r.replaced() {
		return r.open()
	}
	if r.size == 0 || r.size+pending <= r.limits.MaxSize {
		return nil
	}
	if err := os.Rename(r.Path(), filepath.Join(r.dir, rotatedName(r.name, r.now()))); err != nil {
		return err
	}
	if err := r.open(); err != nil {
		return err
	}
	_, err = pruneLogDirLocked(r.dir, r.limits, r.now())
	return err
}

// Close closes the file.
func (r *RotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// rotatedName is NAME.20261125T181500.123Z.EXT: sortable, and unique enough
// that two rotations never collide (the lock orders them).
func rotatedName(name string, t time.Time) string {
	ext := filepath.Ext(name)
	return strings.TrimSuffix(name, ext) + "." + t.UTC().Format("20060102T150405.000Z") + ext
}

// lockLogDir takes the directory's rotation lock.
func lockLogDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, rotateLockName), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// RunLog is the log file of one run. It holds a shared lock while open, so
// that pruning never removes the log of a run in progress, in any process.
type RunLog struct {
	*os.File
}

// CreateRunLog creates (or appends to) the run log dir/name.
func CreateRunLog(dir, name string) (*RunLog, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	// Best effort: a file system without locks only loses the protection.
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	return &RunLog{f}, nil
}

// logKind sorts the files of the log directory.
type logKind int

const (
	kindOther   logKind = iota // not ours: never touched
	kindLive                   // agent.log, retention.log, audit.jsonl
	kindRotated                // a rotated copy of agent.log or retention.log
	kindAudit                  // a rotated copy of audit.jsonl
	kindRun                    // one run's log
)

func classifyLog(name string) logKind {
	switch name {
	case AgentLogName, RetentionLogName, AuditLogName:
		return kindLive
	}
	for _, live := range []string{AgentLogName, RetentionLogName, AuditLogName} {
		ext := filepath.Ext(live)
		stem := strings.TrimSuffix(live, ext) + "."
		if strings.HasPrefix(name, stem) && strings.HasSuffix(name, ext) && len(name) > len(stem)+len(ext) {
			if live == AuditLogName {
				return kindAudit
			}
			return kindRotated
		}
	}
	for _, p := range runLogPrefixes {
		if strings.HasPrefix(name, p) && strings.HasSuffix(name, ".log") {
			return kindRun
		}
	}
	return kindOther
}

// PruneResult says what a prune removed and what is left.
type PruneResult struct {
	Removed []string
	// Total is the size of the files Aegis keeps in the directory afterwards.
	Total int64
}

// PruneLogDir enforces limits on dir: per-run logs and rotated copies older
// than MaxAge go, rotated copies beyond MaxFiles per log go, then the
// oldest files go until the total fits MaxTotal (per-run logs and rotated
// copies first, rotated audit copies last). Live files and the logs of
// runs in progress are never removed.
func PruneLogDir(dir string, limits LogLimits, now time.Time) (PruneResult, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return PruneResult{}, nil
	}
	unlock, err := lockLogDir(dir)
	if err != nil {
		return PruneResult{}, err
	}
	defer unlock()
	return pruneLogDirLocked(dir, limits, now)
}

type logFile struct {
	name string
	kind logKind
	size int64
	mod  time.Time
}

func pruneLogDirLocked(dir string, limits LogLimits, now time.Time) (PruneResult, error) {
	limits = limits.WithDefaults()
	files, total, err := listLogs(dir)
	if err != nil {
		return PruneResult{}, err
	}
	res := PruneResult{Total: total}
	rotateOversized(dir, files, limits, now)
	removed := map[string]bool{}
	remove := func(f logFile) {
		if removed[f.name] {
			return
		}
		p := filepath.Join(dir, f.name)
		if f.kind == kindRun && inUse(p) {
			return
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return
		}
		removed[f.name] = true
		res.Removed = append(res.Removed, f.name)
		res.Total -= f.size
	}
	// Age.
	for _, f := range files {
		if (f.kind == kindRun || f.kind == kindRotated) && now.Sub(f.mod) > limits.MaxAge {
			remove(f)
		}
	}
	// Count of rotated copies, per live log.
	perLog := map[string][]logFile{}
	for _, f := range files {
		if f.kind == kindRotated && !removed[f.name] {
			stem := f.name[:strings.IndexByte(f.name, '.')]
			perLog[stem] = append(perLog[stem], f)
		}
	}
	for _, copies := range perLog {
		for i := 0; i < len(copies)-limits.MaxFiles; i++ {
			remove(copies[i])
		}
	}
	// Total: the oldest go first, audit copies last.
	for _, pass := range [][]logKind{{kindRun, kindRotated}, {kindAudit}} {
		for _, f := range files {
			if res.Total <= limits.MaxTotal {
				break
			}
			for _, k := range pass {
				if f.kind == k {
					remove(f)
				}
			}
		}
	}
	return res, nil
}

// listLogs returns the log files of dir, oldest first (the name breaks
// ties: the timestamps in it sort), and their total size.
func listLogs(dir string) ([]logFile, int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	var files []logFile
	var total int64
	for _, e := range entries {
		k := classifyLog(e.Name())
		if k == kindOther || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		files = append(files, logFile{name: e.Name(), kind: k, size: fi.Size(), mod: fi.ModTime()})
		total += fi.Size()
	}
	sort.Slice(files, func(i, j int) bool {
		if !files[i].mod.Equal(files[j].mod) {
			return files[i].mod.Before(files[j].mod)
		}
		return files[i].name < files[j].name
	})
	return files, total, nil
}

// rotateOversized rotates a live file past its bound whose writer does not
// rotate it (one opened per pass, or by an older version); a RotatingFile
// in another process notices and reopens.
func rotateOversized(dir string, files []logFile, limits LogLimits, now time.Time) {
	for i, f := range files {
		if f.kind == kindLive && f.size > limits.MaxSize {
			name := rotatedName(f.name, now)
			if err := os.Rename(filepath.Join(dir, f.name), filepath.Join(dir, name)); err == nil {
				files[i].name = name
				files[i].kind = classifyLog(name)
			}
		}
	}
}

// inUse reports whether a run log is held open by a run.
func inUse(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// Interface guard.
var _ io.WriteCloser = (*RotatingFile)(nil)
