package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	v1 "github.com/aegis-backup/aegis/api/v1"
)

func newRunCommand(g *globals) *cobra.Command {
	var source string
	var wait bool
	cmd := &cobra.Command{
		Use:   "run POLICY",
		Short: "Back up now, whatever the schedule",
		Long: `Run one policy now. If the agent or another command is running the same
policy, run refuses with a message (or waits, with --wait): two runs of one
policy never interleave.`,
		Example: `  aegis-agent run web
  aegis-agent run web --source site`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := applyPriority(g.priority); err != nil {
				return err
			}
			prog := g.startProgress()
			log, closeLog, err := g.logger(true)
			if err != nil {
				return err
			}
			defer closeLog()
			a, err := g.agent(log)
			if err != nil {
				return err
			}
			defer a.Close() // after the report: waits for the notifications in flight
			res, _, err := a.RunNow(cmd.Context(), args[0], source, wait)
			if prog != nil {
				prog.Close()
			}
			if err != nil {
				if strings.Contains(err.Error(), "not found") || strings.Contains(err.Error(), "is invalid") {
					return invalid(err)
				}
				return failed(err)
			}
			printRun(cmd.OutOrStdout(), args[0], res)
			if res.Result != v1.ResultSucceeded {
				return silentExit(exitFailed)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&source, "source", "", "back up only this source")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for a run of the same policy in progress instead of refusing")
	g.registerBackupFlags(cmd.Flags())
	return cmd
}

func printRun(w io.Writer, policy string, r *v1.RunResult) {
	fmt.Fprintf(w, "policy %s: %s in %s, snapshot %s\n", policy, r.Result, r.Duration, r.SnapshotID)
	for _, s := range r.Sources {
		line := fmt.Sprintf("  source %-12s %-9s %d files, %s read, %s stored", s.Name, s.Result, s.Files, humanBytes(s.BytesRead), humanBytes(s.Bytes))
		if s.Error != "" {
			line += ": " + s.Error
		}
		fmt.Fprintln(w, line)
		for _, warn := range s.Warnings {
			fmt.Fprintf(w, "    warning: %s\n", warn)
		}
	}
	for _, d := range r.Destinations {
		line := fmt.Sprintf("  destination %-7s %-9s %s", d.Name, d.Result, humanBytes(d.Bytes))
		if d.Error != "" {
			line += ": " + d.Error
		}
		fmt.Fprintln(w, line)
	}
	if r.LogFile != "" {
		fmt.Fprintf(w, "  log: %s\n", r.LogFile)
	}
}
