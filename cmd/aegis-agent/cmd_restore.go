package main

import (
	"strings"

	"github.com/spf13/cobra"
)

func newRestoreCommand(g *globals) *cobra.Command {
	var sel selectOpts
	var target string
	var into restoreInto
	cmd := &cobra.Command{
		Use:   "restore POLICY --target DIR",
		Short: "Fetch, verify, decrypt and unpack a snapshot",
		Long: `Restore a snapshot of a policy into TARGET/SOURCE/. Every object is checked
against the SHA-256 in its manifest while it is unpacked; nothing is ever
written outside --target. A restore that stops early leaves a file named
.aegis-restore-incomplete in the source's directory.

Database dumps are written to TARGET/SOURCE/ as files; with --load-into they
are then loaded into the server named (pg_restore, mysql), refusing databases
that already have tables unless --overwrite is given. A dockerVolume source
can go straight into a Docker volume with --to-volume.`,
		Example: `  aegis-agent restore web --target /srv/restore
  aegis-agent restore web --snapshot 20261125T010000Z --source site --from offsite --identity /root/aegis.key --target /srv/restore
  aegis-agent restore db --source pg --target /srv/restore --load-into 127.0.0.1:5432 --db-user postgres --db-password-file /etc/aegis/secrets/pg --database shop=shop_restored
  aegis-agent restore app --source uploads --to-volume uploads-restored`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := into.check(target); err != nil {
				return invalid(err)
			}
			cfg, err := g.loadForRead()
			if err != nil {
				return err
			}
			keys, err := sel.keyRing(g, cfg, args[0])
			if err != nil {
				return err
			}
			d, snaps, err := sel.find(cmd.Context(), cfg, args[0])
			if err != nil {
				return err
			}
			defer d.Close()
			if len(into.volumes) > 0 {
				err := into.restoreVolumesOf(cmd.Context(), cmd.OutOrStdout(), d, snaps, keys)
				auditRestore(g, snaps, "docker volume "+strings.Join(into.volumes, ","), err)
				return err
			}
			if err := into.checkLoad(snaps); err != nil {
				return err
			}
			g.startProgress()
			return restoreAll(cmd, g, d, snaps, target, keys, into.loadInto, func() error {
				return into.loadAll(cmd.Context(), cmd.OutOrStdout(), snaps, target)
			})
		},
	}
	sel.register(cmd)
	cmd.Flags().StringVar(&target, "target", "", "directory to restore into (required, unless --to-volume)")
	into.register(cmd)
	return cmd
}
