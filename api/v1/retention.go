package v1

import "time"

// ResultSkipped is a destination result of a retention pass that deleted
// nothing there on purpose (its last backup failed, or its listing looked
// incomplete).
const ResultSkipped = "Skipped"

// RetentionResult is the outcome of a policy's last retention pass.
type RetentionResult struct {
	Time time.Time `json:"time"`
	// Result is Succeeded when retention was applied on every destination,
	// Failed when on none, PartiallyFailed otherwise.
	Result string `json:"result"`
	// Kept and Deleted count snapshots over all destinations.
	Kept    int `json:"kept"`
	Deleted int `json:"deleted"`
	// LeftoversRemoved counts directories of unfinished uploads and
	// interrupted deletions that were removed.
	LeftoversRemoved int                          `json:"leftoversRemoved,omitempty"`
	BytesFreed       int64                        `json:"bytesFreed"`
	Destinations     []RetentionDestinationResult `json:"destinations,omitempty"`
}

// RetentionDestinationResult is what one retention pass did on one
// destination.
type RetentionDestinationResult struct {
	Name string `json:"name"`
	// Result is Succeeded, Skipped or Failed.
	Result           string `json:"result"`
	Kept             int    `json:"kept"`
	Deleted          int    `json:"deleted"`
	LeftoversRemoved int    `json:"leftoversRemoved,omitempty"`
	BytesFreed       int64  `json:"bytesFreed"`
	// Message says why the destination was skipped, or what failed.
	Message string `json:"message,omitempty"`
}
