package observe

import (
	"encoding/json"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Audit actions: each action that changes something writes exactly one
// line to audit.jsonl. docs/observability.md lists the fields.
const (
	AuditBackupPublished = "backup.published"
	AuditSnapshotDeleted = "snapshot.deleted"
	AuditRestoreRun      = "restore.run"
	AuditKeyGenerated    = "key.generated"
	AuditKeyRotated      = "key.rotated"
	AuditConfigAccepted  = "config.accepted"
	AuditConfigRejected  = "config.rejected"
	AuditConfigRemoved   = "config.removed"
)

// Audit outcomes.
const (
	OutcomeSuccess = "success"
	// OutcomePartial: a backup published some sources or destinations only.
	OutcomePartial = "partial"
	OutcomeFailure = "failure"
)

// ActorAgent is the actor of what the agent does on its own (a schedule, a
// reconcile pass, --once).
const ActorAgent = "agent"

// AuditEvent is one line of audit.jsonl. Time, Host, Actor and PID are
// filled in by AuditLog.Record when left empty. Nothing in it is secret:
// keys appear by ID, secret files by path, never by content.
type AuditEvent struct {
	Time    time.Time `json:"time"`
	Host    string    `json:"host"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Object  string    `json:"object"`
	Outcome string    `json:"outcome"`

	Policy       string   `json:"policy,omitempty"`
	Snapshot     string   `json:"snapshot,omitempty"`
	Sources      []string `json:"sources,omitempty"`
	Destination  string   `json:"destination,omitempty"`
	Destinations []string `json:"destinations,omitempty"`
	File         string   `json:"file,omitempty"`
	KeyID        string   `json:"keyId,omitempty"`
	Generation   int64    `json:"generation,omitempty"`
	Bytes        int64    `json:"bytes,omitempty"`
	// Message says why an action failed, or what a rejected manifest got
	// wrong.
	Message string `json:"message,omitempty"`
	// Command is the aegis-agent command that acted ("run", "restore", ...),
	// empty for the agent.
	Command string `json:"command,omitempty"`
	PID     int    `json:"pid"`
}

// maxAuditMessage bounds the message of one audit line.
const maxAuditMessage = 4000

// AuditLog appends AuditEvents to LOG_DIR/audit.jsonl, one JSON object per
// line, each written with one append and synced to disk, so that lines of
// several processes never interleave and a crash loses none that returned.
// The zero of *AuditLog (nil) records nothing.
type AuditLog struct {
	w     *RotatingFile
	host  string
	actor string
	now   func() time.Time
	mu    sync.Mutex
}

// OpenAudit opens the audit log of dir. actor is ActorAgent or the user
// running a command (see CurrentActor).
func OpenAudit(dir string, limits LogLimits, host, actor string, now func() time.Time) (*AuditLog, error) {
	if now == nil {
		now = time.Now
	}
	if host == "" {
		host, _ = os.Hostname()
	}
	if actor == "" {
		actor = ActorAgent
	}
	w, err := OpenRotating(dir, AuditLogName, limits, now)
	if err != nil {
		return nil, err
	}
	return &AuditLog{w: w, host: host, actor: actor, now: now}, nil
}

// Record appends ev.
func (a *AuditLog) Record(ev AuditEvent) error {
	if a == nil {
		return nil
	}
	if ev.Time.IsZero() {
		ev.Time = a.now()
	}
	ev.Time = ev.Time.UTC()
	if ev.Host == "" {
		ev.Host = a.host
	}
	if ev.Actor == "" {
		ev.Actor = a.actor
	}
	if ev.PID == 0 {
		ev.PID = os.Getpid()
	}
	if len(ev.Message) > maxAuditMessage {
		ev.Message = ev.Message[:maxAuditMessage] + "..."
	}
	line, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.w.Write(line); err != nil {
		return err
	}
	return a.w.Sync()
}

// Close closes the file.
func (a *AuditLog) Close() error {
	if a == nil {
		return nil
	}
	return a.w.Close()
}

// Sync flushes the live file to disk.
func (r *RotatingFile) Sync() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return os.ErrClosed
	}
	return r.f.Sync()
}

// CurrentActor names the person running this process: the user who ran
// sudo (SUDO_USER), else the login user of the session (the kernel's audit
// login UID, which survives su and sudo), else the effective user.
func CurrentActor() string {
	return actorFrom(os.Getenv("SUDO_USER"), readLoginUID(), lookupUser, os.Getuid())
}

func readLoginUID() string {
	b, err := os.ReadFile("/proc/self/loginuid")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func lookupUser(uid string) (string, bool) {
	u, err := user.LookupId(uid)
	if err != nil {
		return "", false
	}
	return u.Username, true
}

// actorFrom is CurrentActor with its inputs passed in. loginUID is the
// content of /proc/self/loginuid; 4294967295 means unset (a daemon, a
// container).
func actorFrom(sudoUser, loginUID string, lookup func(uid string) (string, bool), euid int) string {
	if sudoUser != "" {
		return sudoUser
	}
	if loginUID != "" && loginUID != "4294967295" {
		if name, ok := lookup(loginUID); ok {
			return name
		}
		return "uid:" + loginUID
	}
	uid := strconv.Itoa(euid)
	if name, ok := lookup(uid); ok {
		return name
	}
	return "uid:" + uid
}
