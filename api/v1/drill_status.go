package v1

import "time"

// Condition types of drills and recovery objectives.
const (
	// ConditionRestorable is True when the policy's last restore drill
	// succeeded on every source it checked.
	ConditionRestorable = "Restorable"
	// ConditionObjectivesMet is False when the achieved RPO or the
	// measured RTO misses spec.objectives.
	ConditionObjectivesMet = "ObjectivesMet"
)

// DrillResult is the evidence of one restore drill of a policy.
type DrillResult struct {
	ID        string    `json:"id"`
	Policy    string    `json:"policy"`
	Host      string    `json:"host"`
	StartTime time.Time `json:"startTime"`
	Duration  string    `json:"duration"`
	Result    string    `json:"result"` // Succeeded, Failed, PartiallyFailed
	// MeasuredRTO is the time a full restore of every source drilled would
	// take, from the drill's restore times (Go duration syntax).
	MeasuredRTO string              `json:"measuredRTO,omitempty"`
	Sources     []DrillSourceResult `json:"sources,omitempty"`
	// Report is the JSON report's path in the log directory.
	Report string `json:"report,omitempty"`
	Error  string `json:"error,omitempty"`
}

// DrillSourceResult is what a drill did and found for one source.
type DrillSourceResult struct {
	Name         string    `json:"name"`
	Kind         string    `json:"kind"`
	SnapshotID   string    `json:"snapshotID,omitempty"`
	SnapshotTime time.Time `json:"snapshotTime,omitzero"`
	Destination  string    `json:"destination,omitempty"`
	Result       string    `json:"result"`
	// RestoreDuration is the time the restore took; MeasuredRTO scales it
	// to the whole snapshot.
	RestoreDuration string `json:"restoreDuration"`
	MeasuredRTO     string `json:"measuredRTO,omitempty"`
	// RawBytes is the snapshot's size before compression and encryption.
	RawBytes int64 `json:"rawBytes"`
	// Files counts the regular files read and hashed; FilesRestored those
	// of the sample written to scratch space and read back.
	Files         int64 `json:"files,omitempty"`
	FilesRestored int64 `json:"filesRestored,omitempty"`
	BytesRestored int64 `json:"bytesRestored,omitempty"`
	// LiveCompared counts the restored files compared with live files
	// unchanged since the snapshot; LiveChanged those skipped because the
	// live file changed.
	LiveCompared int64           `json:"liveCompared,omitempty"`
	LiveChanged  int64           `json:"liveChanged,omitempty"`
	Databases    []DrillDatabase `json:"databases,omitempty"`
	Error        string          `json:"error,omitempty"`
}

// DrillDatabase is what a drill checked of one restored database.
type DrillDatabase struct {
	Name         string       `json:"name"`
	TemporaryDB  string       `json:"temporaryDatabase"`
	Tables       int          `json:"tables"`
	Rows         int64        `json:"rows"`
	ChecksPassed int          `json:"checksPassed"`
	Checks       []DrillQuery `json:"checks,omitempty"`
}

// DrillQuery is one user check and its answer.
type DrillQuery struct {
	SQL    string `json:"sql"`
	Value  int64  `json:"value"`
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
}

// ObjectivesStatus is how a policy stands against its recovery objectives.
type ObjectivesStatus struct {
	RPO string `json:"rpo,omitempty"`
	RTO string `json:"rto,omitempty"`
	// AchievedRPO is the age of the newest good snapshot of each source.
	AchievedRPO map[string]string `json:"achievedRPO,omitempty"`
	// MeasuredRTO is the last drill's restore time scaled to the full size.
	MeasuredRTO string `json:"measuredRTO,omitempty"`
}
