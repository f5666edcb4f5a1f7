package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

func newSnapshotsCommand(g *globals) *cobra.Command {
	var only string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "snapshots [POLICY]",
		Short: "List snapshots, read from the destinations",
		Example: `  aegis-agent snapshots
  aegis-agent snapshots web --destination disk --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			policy := ""
			if len(args) == 1 {
				policy = args[0]
			}
			cfg, err := g.loadForRead()
			if err != nil {
				return err
			}
			names, err := destinationsFor(cfg, policy, only)
			if err != nil {
				return err
			}
			var all []snapshot.Snapshot
			var errs []error
			for _, n := range names {
				d, err := openDestination(cfg, n)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				snaps, bad, err := snapshot.ListSnapshotsLenient(cmd.Context(), d, n, policy)
				d.Close()
				if err != nil {
					errs = append(errs, err)
					continue
				}
				// An unreadable manifest is shown, and fails the command,
				// without hiding the snapshots that can be read.
				errs = append(errs, bad...)
				all = append(all, snaps...)
			}
			if asJSON {
				if all == nil {
					all = []snapshot.Snapshot{}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(all); err != nil {
					return failed(err)
				}
			} else {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTIME\tHOST\tPOLICY\tSOURCE\tDESTINATION\tFILES\tSTORED")
				for _, s := range all {
					m := s.Manifest
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", m.ID, m.Time.Local().Format(time.DateTime), m.Host, m.Policy, m.Source, s.Destination, m.Files, humanBytes(s.Size))
				}
				tw.Flush()
			}
			if len(errs) > 0 {
				return failed(errors.Join(errs...))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&only, "destination", "", "read only this destination")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
