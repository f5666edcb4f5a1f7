package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile"
	"github.com/aegis-backup/aegis/reconcile/observe"
)

// Policy states in the status table, worst first.
const (
	stateInvalid   = "INVALID"
	stateFailing   = "FAILING"
	stateOverdue   = "OVERDUE"
	statePending   = "PENDING"
	stateSuspended = "SUSPENDED"
	stateOK        = "OK"
)

// statusRow is one policy as `status` shows it. The JSON form is for
// scripts: times in RFC 3339, sizes in bytes, ages in seconds. SizeBytes
// is the stored bytes of the last run's snapshots on one destination, as
// snapshots and verify count them.
type statusRow struct {
	Policy string `json:"policy"`
	// State is OK, FAILING, OVERDUE, PENDING (never run), SUSPENDED or
	// INVALID.
	State              string       `json:"state"`
	Ready              string       `json:"ready"`
	Reason             string       `json:"reason,omitempty"`
	Message            string       `json:"message,omitempty"`
	LastSuccessfulTime *time.Time   `json:"lastSuccessfulTime,omitempty"`
	AgeSeconds         *int64       `json:"ageSeconds,omitempty"`
	NextScheduleTime   *time.Time   `json:"nextScheduleTime,omitempty"`
	LastResult         string       `json:"lastResult,omitempty"`
	LastRunTime        *time.Time   `json:"lastRunTime,omitempty"`
	SizeBytes          int64        `json:"sizeBytes"`
	Destinations       statusDests  `json:"destinations"`
	Overdue            bool         `json:"overdue"`
	OverdueReason      string       `json:"overdueReason,omitempty"`
	LogFile            string       `json:"logFile,omitempty"`
	Retention          *retentionIn `json:"retention,omitempty"`
	Drill              *drillIn     `json:"lastDrill,omitempty"`
	Manifest           string       `json:"manifest"`
	// Errors are the problems of an INVALID policy's manifest;
	// RunsLastValid tells that the agent keeps running its last valid
	// version meanwhile.
	Errors        []string `json:"errors,omitempty"`
	RunsLastValid bool     `json:"runsLastValid,omitempty"`
}

type statusDests struct {
	Healthy int      `json:"healthy"`
	Total   int      `json:"total"`
	Failing []string `json:"failing,omitempty"`
}

type retentionIn struct {
	Result  string    `json:"result"`
	Time    time.Time `json:"time"`
	Deleted int       `json:"deleted"`
}

func newStatusCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "What each policy last did and will do next, at a glance",
		Long: `Show each policy in one line: its state, its last success and how long ago
that was, its next run, its last result, the size of its last backup, and how
many of its destinations took it. Policies that are not OK are explained
below the table, with their run log. Colours on a terminal (NO_COLOR turns
them off); --json for scripts.

A policy is OVERDUE when its last success is older than twice its schedule's
interval, or when its next run is well past (is the agent running?).

Exit code: 0 when every policy is OK, pending or suspended; 1 when one is
failing or overdue; 2 when a manifest is invalid. It can serve as a
monitoring check.`,
		Example: "  aegis-agent status\n  aegis-agent status --json | jq '.[] | select(.state != \"OK\")'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadForRead()
			if err != nil {
				return err
			}
			now := time.Now()
			if clock, err := agentClock(); err == nil && clock != nil {
				now = clock()
			}
			rows, err := statusRows(cfg, g.statusDir, g.stateDir, now)
			if err != nil {
				return failed(err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rows); err != nil {
					return failed(err)
				}
			} else {
				color := false
				if f, ok := out.(*os.File); ok && isTerminal(f) && os.Getenv("NO_COLOR") == "" {
					color = true
				}
				printStatus(out, rows, now, color)
				printIdentities(out, cfg, g.keysDir)
				if len(cfg.Errors) > 0 {
					fmt.Fprintf(out, "\n%d problem(s) in the manifests: aegis-agent validate lists them\n", len(cfg.Errors))
				}
			}
			return silentExitIf(statusExitCode(rows, len(cfg.Errors)))
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func silentExitIf(code int) error {
	if code == exitOK {
		return nil
	}
	return silentExit(code)
}

// statusExitCode: 2 when a manifest is invalid, else 1 when a policy is
// failing or overdue, else 0.
func statusExitCode(rows []statusRow, manifestErrors int) int {
	if manifestErrors > 0 {
		return exitInvalid
	}
	for _, r := range rows {
		if r.State == stateFailing || r.Overdue || r.State == stateInvalid {
			return exitFailed
		}
	}
	return exitOK
}

// statusRows reads the sidecars of the config's manifest files and builds
// one row per policy: first those known only by their last valid version
// (their file no longer parses; their status then comes from the state
// store), then the others in the order of the manifests.
func statusRows(cfg *reconcile.Config, statusDir, stateDir string, now time.Time) ([]statusRow, error) {
	rows := []statusRow{}
	destReach := map[string]*v1.Condition{}
	entries := map[string]v1.ObjectStatus{}
	for _, f := range cfg.Files {
		sf, err := reconcile.ReadStatusFile(reconcile.StatusPath(f, statusDir))
		if err != nil {
			return nil, err
		}
		for _, it := range sf.Items {
			entries[it.Kind+"/"+it.Name] = it.Status
			if it.Kind == v1.KindDestination {
				destReach[it.Name] = v1.FindCondition(it.Status.Conditions, v1.ConditionReachable)
			}
		}
	}
	policies := cfg.LastValidOnly(v1.KindBackupPolicy)
	for _, o := range cfg.Objects {
		if o.Kind == v1.KindBackupPolicy {
			policies = append(policies, o)
		}
	}
	for _, o := range policies {
		st, seen := entries[v1.KindBackupPolicy+"/"+o.Name]
		if !seen && cfg.LastValid(v1.KindBackupPolicy, o.Name) != nil {
			st, seen = recordedStatus(stateDir, o.Name)
		}
		row := statusRowOf(policyObject(cfg, o), st, seen, len(cfg.ObjectErrors(o)) > 0, destReach, now)
		if row.State == stateInvalid {
			explainInvalid(&row, cfg, o)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// policyObject is o with the spec status goes by: today's when it decodes,
// else its last valid version, else an empty one.
func policyObject(cfg *reconcile.Config, o *v1.Object) *v1.Object {
	c := *o
	if p := cfg.Policy(o.Name); p != nil && c.Policy == nil {
		c.Policy = p
	}
	if c.Policy == nil {
		c.Policy = &v1.BackupPolicy{}
	}
	return &c
}

// explainInvalid gives an invalid policy's row its errors and says whether
// its last valid version runs in the meantime.
func explainInvalid(r *statusRow, cfg *reconcile.Config, o *v1.Object) {
	for _, e := range cfg.ObjectErrors(o) {
		r.Errors = append(r.Errors, e.Error())
	}
	r.RunsLastValid = cfg.LastValid(v1.KindBackupPolicy, o.Name) != nil
	if len(r.Errors) > 0 {
		r.Message = strings.Join(r.Errors, "; ")
	}
	if r.RunsLastValid && !strings.Contains(r.Message, "last valid version") {
		r.Message += "; the agent keeps running the last valid version"
	} else if !r.RunsLastValid {
		r.Message += "; no valid version of it ever ran"
	}
}

// statusRowOf sums up one policy; it is pure, for the tests.
func statusRowOf(o *v1.Object, st v1.ObjectStatus, seen, invalid bool, destReach map[string]*v1.Condition, now time.Time) statusRow {
	p := o.Policy
	r := statusRow{Policy: o.Name, Ready: v1.ConditionUnknown, Manifest: o.File,
		LastSuccessfulTime: st.LastSuccessfulTime, NextScheduleTime: st.NextScheduleTime}
	if c := v1.FindCondition(st.Conditions, v1.ConditionReady); c != nil {
		r.Ready, r.Reason, r.Message = c.Status, c.Reason, c.Message
	}
	if t := st.LastSuccessfulTime; t != nil {
		age := int64(now.Sub(*t).Seconds())
		r.AgeSeconds = &age
	}
	if lr := st.LastRun; lr != nil {
		r.LastResult, r.LogFile = lr.Result, lr.LogFile
		t := lr.StartTime
		r.LastRunTime = &t
		for _, s := range lr.Sources {
			r.SizeBytes += s.Bytes
		}
	}
	if lr := st.LastRetention; lr != nil {
		r.Retention = &retentionIn{Result: lr.Result, Time: lr.Time, Deleted: lr.Deleted}
	}
	r.Drill = drillRowOf(st)
	r.Destinations = destHealth(p.Spec.Destinations, st.LastRun, destReach)
	r.Overdue, r.OverdueReason = observe.Overdue(p, st, now)

	switch {
	case invalid:
		r.State = stateInvalid
		if c := v1.FindCondition(st.Conditions, v1.ConditionValid); c != nil && c.Message != "" {
			r.Message = c.Message
		} else {
			r.Message = "the manifest is invalid: aegis-agent validate says why"
		}
	case r.Ready == v1.ConditionFalse:
		r.State = stateFailing
	case r.Overdue:
		r.State = stateOverdue
	case p.Spec.Suspend:
		r.State = stateSuspended
	case !seen || st.LastRun == nil:
		r.State = statePending
		if !seen {
			r.Message = "no status yet: the agent has not reconciled this manifest"
		}
	default:
		r.State = stateOK
	}
	return r
}

// destHealth counts the policy's destinations that took its last run (or,
// before any run, that answered their last check).
func destHealth(names []string, last *v1.RunResult, reach map[string]*v1.Condition) statusDests {
	d := statusDests{Total: len(names)}
	for _, n := range names {
		ok := false
		found := false
		if last != nil {
			for _, dr := range last.Destinations {
				if dr.Name == n {
					found, ok = true, dr.Result == v1.ResultSucceeded
				}
			}
		}
		if !found {
			c := reach[n]
			ok = c != nil && c.Status == v1.ConditionTrue
		}
		if c := reach[n]; c != nil && c.Status == v1.ConditionFalse {
			ok = false
		}
		if ok {
			d.Healthy++
		} else {
			d.Failing = append(d.Failing, n)
		}
	}
	return d
}

const (
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiBold   = "\x1b[1m"
	ansiReset  = "\x1b[0m"
)

func stateColor(state string) string {
	switch state {
	case stateOK:
		return ansiGreen
	case stateFailing, stateOverdue, stateInvalid:
		return ansiRed + ansiBold
	}
	return ansiYellow
}

// printStatus writes the table and, below it, what is wrong with each
// policy that is not OK.
func printStatus(w io.Writer, rows []statusRow, now time.Time, color bool) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "no BackupPolicy in the config directory")
		return
	}
	table := [][]string{statusHeader}
	for _, r := range rows {
		table = append(table, statusCells(r, now))
	}
	printTable(w, table, color)
	printProblems(w, rows, color)
	printDrills(w, rows, now)
}

var statusHeader = []string{"POLICY", "STATE", "LAST SUCCESS", "AGE", "NEXT RUN", "LAST RESULT", "STORED", "DESTINATIONS"}

// statusCells is one policy's line of the table.
func statusCells(r statusRow, now time.Time) []string {
	last, age := "never", "-"
	if r.LastSuccessfulTime != nil {
		last = r.LastSuccessfulTime.Local().Format("2006-01-02 15:04")
		age = observe.ShortAge(now.Sub(*r.LastSuccessfulTime))
	}
	next := "-"
	if t := r.NextScheduleTime; t != nil {
		if t.After(now) {
			next = "in " + observe.ShortAge(t.Sub(now))
		} else {
			next = observe.ShortAge(now.Sub(*t)) + " late"
		}
		if r.Reason == reconcile.ReasonWaitingForRetry {
			next += " (retry)"
		}
	}
	result := "-"
	if r.LastResult != "" {
		result = r.LastResult
		if r.LastRunTime != nil {
			result += " " + observe.ShortAge(now.Sub(*r.LastRunTime)) + " ago"
		}
	}
	size := "-"
	if r.LastRunTime != nil && r.SizeBytes > 0 {
		size = humanBytes(r.SizeBytes)
	}
	dests := fmt.Sprintf("%d/%d", r.Destinations.Healthy, r.Destinations.Total)
	if len(r.Destinations.Failing) > 0 {
		dests += " (" + strings.Join(r.Destinations.Failing, ", ") + " not ok)"
	}
	return []string{r.Policy, r.State, last, age, next, result, size, dests}
}

// printTable aligns the columns of table, whose first row is the header;
// with color, the header is bold and the state (the second column)
// coloured.
func printTable(w io.Writer, table [][]string, color bool) {
	widths := make([]int, len(table[0]))
	for _, row := range table {
		for i, c := range row {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for ri, row := range table {
		var b strings.Builder
		for i, c := range row {
			pad := strings.Repeat(" ", widths[i]-len([]rune(c)))
			if i == len(row)-1 {
				pad = ""
			}
			cell := c
			if color && ri > 0 && i == 1 {
				cell = stateColor(c) + c + ansiReset
			}
			if color && ri == 0 {
				cell = ansiBold + c + ansiReset
			}
			b.WriteString(cell + pad)
			if i < len(row)-1 {
				b.WriteString("  ")
			}
		}
		fmt.Fprintln(w, b.String())
	}
}

// printProblems explains, below the table, each policy that is not OK.
func printProblems(w io.Writer, rows []statusRow, color bool) {
	first := true
	for _, r := range rows {
		if r.State == stateOK || r.State == statePending && r.Message == "" || r.State == stateSuspended {
			continue
		}
		if first {
			fmt.Fprintln(w)
			first = false
		}
		name := r.Policy + ":"
		if color {
			name = stateColor(r.State) + name + ansiReset
		}
		msg := r.Message
		if r.Overdue && r.State != stateFailing {
			msg = r.OverdueReason
		} else if r.Overdue {
			msg += " (" + r.OverdueReason + ")"
		}
		fmt.Fprintf(w, "%s %s\n", name, msg)
		if r.LogFile != "" && (r.State == stateFailing || r.State == stateOverdue) {
			fmt.Fprintf(w, "  log: %s\n", r.LogFile)
		}
	}
}
