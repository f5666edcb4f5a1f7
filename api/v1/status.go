package v1

import "time"

// Condition types.
const (
	// ConditionValid is False when the object's manifest is invalid; the last
	// valid version (if any) keeps running.
	ConditionValid = "Valid"
	// ConditionSupported is False when the object uses a driver this build
	// does not have yet.
	ConditionSupported = "Supported"
	// ConditionReady is True when the policy's last run succeeded on every
	// source and destination.
	ConditionReady = "Ready"
	// ConditionReachable is True when a destination answered its last check.
	ConditionReachable = "Reachable"
)

// Condition statuses.
const (
	ConditionTrue    = "True"
	ConditionFalse   = "False"
	ConditionUnknown = "Unknown"
)

// Condition is one observation about an object, Kubernetes style.
type Condition struct {
	Type               string    `json:"type"`
	Status             string    `json:"status"`
	Reason             string    `json:"reason,omitempty"`
	Message            string    `json:"message,omitempty"`
	LastTransitionTime time.Time `json:"lastTransitionTime"`
}

// SetCondition adds c to conds or updates the entry of the same type; the
// transition time changes only when the status does.
func SetCondition(conds []Condition, c Condition) []Condition {
	for i := range conds {
		if conds[i].Type != c.Type {
			continue
		}
		if conds[i].Status == c.Status {
			c.LastTransitionTime = conds[i].LastTransitionTime
		}
		conds[i] = c
		return conds
	}
	return append(conds, c)
}

// FindCondition returns the condition of the given type, or nil.
func FindCondition(conds []Condition, typ string) *Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

// ObjectStatus is what the agent observed of one object.
type ObjectStatus struct {
	ObservedGeneration int64       `json:"observedGeneration"`
	Conditions         []Condition `json:"conditions,omitempty"`

	// Policies only.
	LastScheduleTime   *time.Time `json:"lastScheduleTime,omitempty"`
	LastSuccessfulTime *time.Time `json:"lastSuccessfulTime,omitempty"`
	NextScheduleTime   *time.Time `json:"nextScheduleTime,omitempty"`
	LastRun            *RunResult `json:"lastRun,omitempty"`
	// LastRetention is the policy's last retention pass.
	LastRetention *RetentionResult `json:"lastRetention,omitempty"`
	// Notifications is the last delivery of each of the policy's
	// notification channels (its ping, each webhook).
	Notifications []NotificationStatus `json:"notifications,omitempty"`
	// LastDrill is the policy's last restore drill; Objectives its
	// recovery objectives and what was achieved.
	LastDrill  *DrillResult      `json:"lastDrill,omitempty"`
	Objectives *ObjectivesStatus `json:"objectives,omitempty"`

	// Destinations only.
	LastCheckTime *time.Time `json:"lastCheckTime,omitempty"`
}

// NotificationStatus is the last delivery to one notification channel.
type NotificationStatus struct {
	// Channel is "ping" or "webhook[N]" (N the index in spec.notify.webhooks).
	Channel string `json:"channel"`
	// Target is the URL with any credentials and query removed.
	Target string    `json:"target"`
	Time   time.Time `json:"time"`
	// Result is Delivered or Failed.
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
}

// Notification delivery results.
const (
	NotificationDelivered = "Delivered"
	NotificationFailed    = "Failed"
)

// RunResult is the outcome of one run of a policy.
type RunResult struct {
	SnapshotID   string              `json:"snapshotID,omitempty"`
	StartTime    time.Time           `json:"startTime"`
	Duration     string              `json:"duration"`
	Result       string              `json:"result"` // Succeeded, Failed, PartiallyFailed
	Sources      []SourceResult      `json:"sources,omitempty"`
	Destinations []DestinationResult `json:"destinations,omitempty"`
	LogFile      string              `json:"logFile,omitempty"`
}

// Run results.
const (
	ResultSucceeded       = "Succeeded"
	ResultPartiallyFailed = "PartiallyFailed"
	ResultFailed          = "Failed"
	// ResultInterrupted: the agent was stopped (SIGTERM) before the run
	// finished; nothing of it was published, and it runs again at once
	// when the agent starts. A clean stop is not a failure.
	ResultInterrupted = "Interrupted"
)

// SourceResult is what one source produced in a run.
type SourceResult struct {
	Name      string   `json:"name"`
	Result    string   `json:"result"`
	Files     int64    `json:"files,omitempty"`
	BytesRead int64    `json:"bytesRead"`
	Bytes     int64    `json:"bytesWritten"` // after compression and encryption
	Duration  string   `json:"duration"`
	Warnings  []string `json:"warnings,omitempty"`
	// Meta holds source-specific facts of the run, as recorded in the
	// snapshot manifest (server version, databases dumped, containers
	// stopped and for how long, ...).
	Meta map[string]string `json:"meta,omitempty"`
	// Storage is the snapshot's storage kind (StorageDeduplicated or
	// StorageArchive).
	Storage string `json:"storage,omitempty"`
	// For deduplicated storage: StreamBytes is the raw stream the source
	// wrote, NewBytes the part of it in chunks no destination held
	// (stored anew), DedupRatio StreamBytes / NewBytes (0 when nothing was
	// new).
	StreamBytes int64   `json:"streamBytes,omitempty"`
	NewBytes    int64   `json:"newBytes,omitempty"`
	DedupRatio  float64 `json:"dedupRatio,omitempty"`
	Error       string  `json:"error,omitempty"`
}

// DestinationResult is what one destination received in a run.
type DestinationResult struct {
	Name     string `json:"name"`
	Result   string `json:"result"`
	Bytes    int64  `json:"bytes"`
	Duration string `json:"duration"`
	Error    string `json:"error,omitempty"`
}

// StatusFile is the content of a NAME.status.yaml sidecar: one entry per
// object of the manifest file beside it.
type StatusFile struct {
	Items []StatusEntry `json:"items"`
}

// StatusEntry names an object and holds its status.
type StatusEntry struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Name       string       `json:"name"`
	Status     ObjectStatus `json:"status"`
}
