package drill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile/atomicfile"
)

// Directory layout under the state directory.
const (
	dirName     = "drills"
	scratchName = "scratch"
	journalName = "journal.json"
	lockName    = "drill.lock"
)

// journal records what a running drill made outside its report (scratch
// space, temporary databases), so that Cleanup can remove it after a crash
// or a SIGTERM.
type journal struct {
	mu   sync.Mutex
	path string
	body journalBody
}

type journalBody struct {
	Policy    string      `json:"policy"`
	Scratch   string      `json:"scratch,omitempty"`
	Databases []journalDB `json:"databases,omitempty"`
}

type journalDB struct {
	Kind string `json:"kind"`
	// Target names the server (no secrets: a password file's path).
	Target v1.DrillTarget `json:"target"`
	Name   string         `json:"name"`
}

func (j *journal) save() error {
	b, err := json.MarshalIndent(j.body, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(j.path, b, 0o600); err != nil {
		return fmt.Errorf("write drill journal: %w", err)
	}
	return nil
}

func (j *journal) setScratch(dir string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.body.Scratch = dir
	return j.save()
}

func (j *journal) addDatabase(kind string, t v1.DrillTarget, name string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.body.Databases = append(j.body.Databases, journalDB{Kind: kind, Target: t, Name: name})
	return j.save()
}

func (j *journal) removeDatabase(name string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i, d := range j.body.Databases {
		if d.Name == name {
			j.body.Databases = append(j.body.Databases[:i], j.body.Databases[i+1:]...)
			break
		}
	}
	_ = j.save()
}

// lock takes the host's drill lock: one drill at a time, by the agent or
// a command. It fails at once when another drill holds it.
func lock(stateDir string) (*os.File, error) {
	dir := filepath.Join(stateDir, dirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("drill state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("drill lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrBusy
		}
		return nil, fmt.Errorf("drill lock: %w", err)
	}
	return f, nil
}

// ErrBusy is returned when another drill runs on this host.
var ErrBusy = errors.New("another restore drill is running on this host")

// Cleanup removes what a drill cut short (a crash, SIGTERM) left behind:
// its scratch directory and its temporary databases. It does nothing while
// a drill runs. The agent calls it when it starts; every drill calls it
// first.
func Cleanup(ctx context.Context, stateDir string, log *slog.Logger) error {
	l, err := lock(stateDir)
	if errors.Is(err, ErrBusy) {
		return nil
	}
	if err != nil {
		return err
	}
	defer l.Close()
	return cleanupLocked(ctx, stateDir, log)
}

func cleanupLocked(ctx context.Context, stateDir string, log *slog.Logger) error {
	dir := filepath.Join(stateDir, dirName)
	path := filepath.Join(dir, journalName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return os.RemoveAll(filepath.Join(dir, scratchName))
	}
	if err != nil {
		return fmt.Errorf("read drill journal: %w", err)
	}
	var body journalBody
	if err := json.Unmarshal(b, &body); err != nil {
		return fmt.Errorf("drill journal %s is damaged: %w", path, err)
	}
	var errs []error
	for _, d := range body.Databases {
		if err := dropLeftover(ctx, d); err != nil {
			errs = append(errs, err)
			continue
		}
		log.Info("dropped the temporary database of an interrupted drill", "policy", body.Policy, "database", d.Name)
	}
	if err := os.RemoveAll(filepath.Join(dir, scratchName)); err != nil {
		errs = append(errs, err)
	} else if body.Scratch != "" {
		log.Info("removed the scratch directory of an interrupted drill", "policy", body.Policy, "dir", body.Scratch)
	}
	if len(errs) > 0 {
		return fmt.Errorf("clean up after an interrupted drill of policy %s: %w", body.Policy, errors.Join(errs...))
	}
	return os.Remove(path)
}

func dropLeftover(ctx context.Context, d journalDB) error {
	k, ok := dbKinds[d.Kind]
	if !ok || !strings.HasPrefix(d.Name, TempDBPrefix) {
		return fmt.Errorf("journal names database %q of kind %q: not a drill's temporary database", d.Name, d.Kind)
	}
	srv, closeFn, err := k.connect(ctx, d.Target)
	if err != nil {
		return fmt.Errorf("drop temporary database %s: %w", d.Name, err)
	}
	defer closeFn()
	return srv.DropDatabase(ctx, d.Name)
}
