package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile"
	"github.com/aegis-backup/aegis/reconcile/retention"
)

func newPruneCommand(g *globals) *cobra.Command {
	var req reconcile.PruneRequest
	var asJSON bool
	var credentials []string
	cmd := &cobra.Command{
		Use:   "prune [POLICY]",
		Short: "Apply retention now",
		Long: `Apply the retention of one policy (or of every valid policy) now, on each of
its destinations: list this host's snapshots there, keep what spec.retention
keeps (saying which rule keeps each), delete the rest, and remove leftovers of
interrupted uploads older than a day. Every deletion is written to
retention.log in the log directory. docs/retention.md states the rules.

Nothing is deleted on a destination whose listing fails, nor, unless --force,
on one whose last backup failed or whose listing lacks the last backup's
snapshot. The newest snapshot of each source is never deleted.

Exit code 1 when a destination could not be pruned (with --dry-run: when one
could not be listed).`,
		Example: `  aegis-agent prune web --dry-run
  aegis-agent prune --json
  aegis-agent prune web --host web1 --destination-credentials /root/prune-credentials   # from another machine (docs/security.md)`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				req.Policy = args[0]
			}
			log, closeLog, err := g.logger(true)
			if err != nil {
				return err
			}
			defer closeLog()
			a, err := g.agent(log)
			if err != nil {
				return err
			}
			if req.Credentials, err = retention.ParseCredentialFlags(credentials); err != nil {
				return invalid(err)
			}
			reports, cfg, err := a.Prune(cmd.Context(), req)
			if errors.Is(err, reconcile.ErrPolicyNotFound) {
				return invalid(err)
			}
			if err != nil {
				return failed(err)
			}
			if asJSON {
				if reports == nil {
					reports = []*retention.PruneReport{}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(reports); err != nil {
					return failed(err)
				}
			} else {
				printPrune(cmd.OutOrStdout(), reports)
			}
			for _, r := range reports {
				if r.Failed() || (!req.DryRun && r.Skipped()) {
					return silentExit(exitFailed)
				}
			}
			if req.Policy == "" && len(cfg.Errors) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d problem(s) in the manifests: invalid policies were not pruned (aegis-agent validate)\n", len(cfg.Errors))
				return silentExit(exitInvalid)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&req.DryRun, "dry-run", false, "show what would be kept and deleted; change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&req.Host, "host", "", "prune the snapshots this host made (default: this machine's host name); for pruning from another machine")
	cmd.Flags().StringArrayVar(&credentials, "destination-credentials", nil, "[NAME=]FILE: credentials for the destinations (or destination NAME) that may delete, in place of the manifest's; repeatable")
	cmd.Flags().BoolVar(&req.Force, "force", false, "also prune destinations whose last backup failed or whose listing lacks the last backup's snapshot")
	return cmd
}

// printPrune writes the reports for a person: per policy and destination,
// every snapshot with what happens to it and why.
func printPrune(w io.Writer, reports []*retention.PruneReport) {
	for _, r := range reports {
		if r.Error != "" {
			fmt.Fprintf(w, "policy %s: not pruned: %s\n", r.Policy, r.Error)
			continue
		}
		loc, err := v1.LoadTimeZone(r.TimeZone)
		if err != nil || r.TimeZone == "UTC" {
			loc = time.UTC
		}
		mode := ""
		if r.DryRun {
			mode = " (dry run: nothing is changed)"
		}
		fmt.Fprintf(w, "policy %s, host %s: retention %s, in %s%s\n", r.Policy, r.Host, r.Rules, r.TimeZone, mode)
		for _, d := range r.Destinations {
			fmt.Fprintf(w, "  destination %s: %s\n", d.Destination, destinationLine(r.DryRun, d))
			if d.Message != "" {
				fmt.Fprintf(w, "    %s\n", d.Message)
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			rows := append(append([]retention.SnapshotVerdict(nil), d.Keep...), d.Delete...)
			sortRows(rows)
			for _, s := range rows {
				action, why := "keep", strings.Join(s.Rules, ", ")
				if s.LockedUntil != nil && slices.Contains(s.Rules, retention.RuleLocked) {
					why += " until " + s.LockedUntil.In(loc).Format("2006-01-02 15:04 MST")
				}
				if len(s.Rules) == 0 {
					action, why = "delete", "kept by no rule"
					if s.Deleted {
						action = "deleted"
					}
				}
				fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\t%s\n", action, s.Source, s.ID, s.Time.In(loc).Format("2006-01-02 15:04 MST"), humanBytes(s.Size), why)
			}
			tw.Flush()
			for _, l := range d.Leftovers {
				state := "left"
				switch {
				case l.Removed:
					state = "removed"
				case l.Remove:
					state = "to remove"
				}
				fmt.Fprintf(w, "    leftover %s (%d object(s), %s): %s: %s\n", l.Dir, l.Objects, humanBytes(l.Size), state, l.Reason)
			}
		}
	}
}

func destinationLine(dryRun bool, d *retention.DestinationPrune) string {
	switch {
	case d.Result == v1.ResultFailed && len(d.Keep)+len(d.Delete) == 0:
		return "failed"
	case dryRun:
		return fmt.Sprintf("%d kept, %d to delete", len(d.Keep), len(d.Delete))
	}
	s := fmt.Sprintf("%d kept, %d deleted", len(d.Keep), d.Deleted)
	if d.LeftoversRemoved > 0 {
		s += fmt.Sprintf(", %d leftover(s) removed", d.LeftoversRemoved)
	}
	s += ", " + humanBytes(d.BytesFreed) + " freed"
	switch d.Result {
	case v1.ResultSkipped:
		s += " (skipped)"
	case v1.ResultFailed:
		s += " (failed)"
	}
	return s
}

// sortRows orders snapshots by source, newest first.
func sortRows(rows []retention.SnapshotVerdict) {
	slices.SortFunc(rows, func(a, b retention.SnapshotVerdict) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), b.Time.Compare(a.Time), cmp.Compare(b.ID, a.ID))
	})
}
