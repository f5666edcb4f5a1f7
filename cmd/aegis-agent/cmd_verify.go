package main

import (
	"fmt"

	v1 "github.com/aegis-backup/aegis/api/v1"

	"github.com/aegis-backup/aegis/reconcile/snapshot"
	"github.com/spf13/cobra"
)

func newVerifyCommand(g *globals) *cobra.Command {
	var sel selectOpts
	var readData bool
	var subset string
	cmd := &cobra.Command{
		Use:   "verify [POLICY]",
		Short: "Prove snapshots are whole and decryptable without unpacking them",
		Example: `  aegis-agent verify web --identity /root/aegis.key
  aegis-agent verify web --snapshot latest`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vopts := snapshot.VerifyOptions{ReadData: readData}
			if subset != "" {
				f, err := snapshot.ParseSubset(subset)
				if err != nil {
					return err
				}
				vopts.Subset = f
			}
			cfg, err := g.loadForRead()
			if err != nil {
				return err
			}
			var policies []string
			if len(args) == 1 {
				policies = args
			} else {
				for _, o := range cfg.LastValidOnly(v1.KindBackupPolicy) {
					policies = append(policies, o.Name)
				}
				for _, o := range cfg.Objects {
					if o.Policy != nil {
						policies = append(policies, o.Name)
					}
				}
			}
			if prog := g.startProgress(); prog != nil {
				defer prog.Close()
				cmd.SetOut(prog.Wrap(cmd.OutOrStdout()))
			}
			bad := 0
			for _, p := range policies {
				keys, err := sel.keyRing(g, cfg, p)
				if err != nil {
					return err
				}
				d, snaps, err := sel.find(cmd.Context(), cfg, p)
				if err != nil {
					fmt.Fprintf(cmd.OutOrStdout(), "FAIL %s: %v\n", p, err)
					bad++
					continue
				}
				for _, s := range snaps {
					r := snapshot.VerifyWithProgress(cmd.Context(), d, s, keys, g.progress(), vopts)
					if r.Err != nil {
						fmt.Fprintf(cmd.OutOrStdout(), "FAIL %s/%s %s on %s: %v\n", p, s.Manifest.Source, s.Manifest.ID, s.Destination, r.Err)
						bad++
						continue
					}
					fmt.Fprintf(cmd.OutOrStdout(), "ok   %s/%s %s on %s: %d object(s), %s stored\n", p, s.Manifest.Source, s.Manifest.ID, s.Destination, r.Objects, humanBytes(s.Size))
				}
				d.Close()
			}
			if bad > 0 {
				return silentExit(exitFailed)
			}
			return nil
		},
	}
	sel.register(cmd)
	cmd.Flags().BoolVar(&readData, "read-data", false, "deduplicated snapshots: read, decrypt and check every chunk (archives are always read in full)")
	cmd.Flags().StringVar(&subset, "read-data-subset", "", "deduplicated snapshots: also read this share of the repository's packs, such as 10%")
	return cmd
}
