package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile/observe"
)

func newDrillCommand(g *globals) *cobra.Command {
	var source string
	var wait, asJSON bool
	cmd := &cobra.Command{
		Use:   "drill POLICY",
		Short: "Prove now that the newest snapshots restore",
		Long: `Run a restore drill of one policy now, whatever spec.drills.schedule says.
Files, system and Docker volume sources are restored into scratch space under
the state directory: every file is hashed and checked against its tar header,
a sample (spec.drills.sample) is written to disk, read back and compared with
the live files unchanged since the snapshot. Database sources are loaded into
a temporary database (aegis_drill_ and a random suffix) on the same server or
the source's drill target, their tables and row counts compared with the dump,
spec.drills.checks run, and the database dropped. A drill never writes to a
destination. The evidence goes to LOG_DIR/drills/POLICY-ID.json, the audit
log and the policy's status (condition Restorable).`,
		Example: `  aegis-agent drill web
  aegis-agent drill db --source pg --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, closeLog, err := g.logger(true)
			if err != nil {
				return err
			}
			defer closeLog()
			a, err := g.agent(log)
			if err != nil {
				return err
			}
			defer a.Close()
			res, err := a.RunDrill(cmd.Context(), args[0], source, wait)
			if res == nil {
				if err != nil && (strings.Contains(err.Error(), "not found") || strings.Contains(err.Error(), "is invalid")) {
					return invalid(err)
				}
				return failed(err)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return failed(err)
				}
			} else {
				printDrill(cmd.OutOrStdout(), res)
			}
			if res.Result != v1.ResultSucceeded {
				return silentExit(exitFailed)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&source, "source", "", "drill only this source")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for a run of the same policy in progress instead of refusing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the drill's result as JSON")
	return cmd
}

// printDrill writes what a drill did and found, a line per source.
func printDrill(w io.Writer, r *v1.DrillResult) {
	fmt.Fprintf(w, "policy %s: drill %s in %s", r.Policy, r.Result, r.Duration)
	if r.MeasuredRTO != "" {
		fmt.Fprintf(w, ", measured RTO %s", r.MeasuredRTO)
	}
	fmt.Fprintln(w)
	for _, s := range r.Sources {
		line := fmt.Sprintf("  source %-12s %-9s", s.Name, s.Result)
		if s.SnapshotID != "" {
			line += fmt.Sprintf(" snapshot %s from %s:", s.SnapshotID, s.Destination)
		}
		switch {
		case len(s.Databases) > 0:
			for _, d := range s.Databases {
				line += fmt.Sprintf(" database %s: %d tables, %d rows, %d/%d checks;", d.Name, d.Tables, d.Rows, d.ChecksPassed, len(d.Checks))
			}
			line = strings.TrimSuffix(line, ";")
		case s.Files > 0:
			line += fmt.Sprintf(" %d files hashed, %d restored (%s) and read back, %d compared with live files (%d changed since)",
				s.Files, s.FilesRestored, humanBytes(s.BytesRestored), s.LiveCompared, s.LiveChanged)
		}
		if s.Error != "" {
			line += " error: " + s.Error
		}
		fmt.Fprintln(w, line)
	}
	if r.Error != "" && len(r.Sources) == 0 {
		fmt.Fprintf(w, "  error: %s\n", r.Error)
	}
	if r.Report != "" {
		fmt.Fprintf(w, "  report: %s\n", r.Report)
	}
}

// drillIn is a policy's last drill as `status` shows it.
type drillIn struct {
	Result      string    `json:"result"`
	Time        time.Time `json:"time"`
	Duration    string    `json:"duration"`
	MeasuredRTO string    `json:"measuredRTO,omitempty"`
	Report      string    `json:"report,omitempty"`
	Error       string    `json:"error,omitempty"`
	// Objectives is the ObjectivesMet condition's message, when the
	// policy has objectives.
	Objectives string `json:"objectives,omitempty"`
}

func drillRowOf(st v1.ObjectStatus) *drillIn {
	d := st.LastDrill
	if d == nil {
		return nil
	}
	in := &drillIn{Result: d.Result, Time: d.StartTime, Duration: d.Duration, MeasuredRTO: d.MeasuredRTO, Report: d.Report, Error: d.Error}
	if c := v1.FindCondition(st.Conditions, v1.ConditionObjectivesMet); c != nil {
		in.Objectives = c.Status + ": " + c.Message
	}
	return in
}

// printDrills lists the last drill of each policy that had one.
func printDrills(w io.Writer, rows []statusRow, now time.Time) {
	first := true
	for _, r := range rows {
		d := r.Drill
		if d == nil {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nlast restore drills:")
			first = false
		}
		line := fmt.Sprintf("  %s: %s %s ago in %s", r.Policy, d.Result, observe.ShortAge(now.Sub(d.Time)), d.Duration)
		if d.MeasuredRTO != "" {
			line += ", measured RTO " + d.MeasuredRTO
		}
		if d.Error != "" {
			line += ": " + d.Error
		}
		fmt.Fprintln(w, line)
		if d.Objectives != "" {
			fmt.Fprintf(w, "    objectives %s\n", d.Objectives)
		}
	}
}
