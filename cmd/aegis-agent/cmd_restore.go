package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/reconcile/observe"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
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
			return runRestore(cmd, g, args[0], &sel, target, &into)
		},
	}
	sel.register(cmd)
	cmd.Flags().StringVar(&sel.limit, "limit", "", "read at most this fast, e.g. 20MiB/s (0 or unlimited: no limit), in place of the destination's bandwidth schedule")
	cmd.Flags().StringVar(&target, "target", "", "directory to restore into (required, unless --to-volume)")
	into.register(cmd)
	return cmd
}

// runRestore restores the snapshot sel chooses of policy: into Docker
// volumes, or under target (then loading database dumps, when asked).
func runRestore(cmd *cobra.Command, g *globals, policy string, sel *selectOpts, target string, into *restoreInto) error {
	if err := into.check(target); err != nil {
		return invalid(err)
	}
	cfg, err := g.loadForRead()
	if err != nil {
		return err
	}
	keys, err := sel.keyRing(g, cfg, policy)
	if err != nil {
		return err
	}
	d, snaps, err := sel.find(cmd.Context(), cfg, policy)
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
	return restoreAll(cmd, g, d, snaps, target, keys, into)
}

// restoreAll restores the snapshots of one run under target, with a
// progress bar each on a terminal, then loads the dumps when --load-into
// asks for it, and writes one audit line for it all.
func restoreAll(cmd *cobra.Command, g *globals, d drivers.Destination, snaps []snapshot.Snapshot, target string, keys *snapshot.KeyRing, into *restoreInto) error {
	prog := g.obs.progress
	out := cmd.OutOrStdout()
	opts := snapshot.RestoreAllOptions{Target: target, Keys: keys}
	if prog != nil {
		out = prog.Wrap(out)
		opts.Progress = prog
	}
	rep, closeRep := newRestoreReport(g, out, cmd.ErrOrStderr(), target)
	defer closeRep()
	opts.Restored = rep.restored
	done, ev, err := snapshot.RestoreAll(cmd.Context(), d, snaps, opts)
	if prog != nil {
		prog.Close()
	}
	ev.File = absPath(target)
	if err != nil {
		g.audit(ev)
		if rep.skipped > 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "aegis-agent: the restore is incomplete: %d %s not restored; %s marks each source restored in part\n",
				rep.skipped, plural(rep.skipped, "entry", "entries"), ".aegis-restore-incomplete")
		}
		return failed(err)
	}
	err = into.loadAll(cmd.Context(), cmd.OutOrStdout(), snaps, target)
	if into.loadInto != "" {
		ev.File += ", loaded into " + into.loadInto
	}
	if err != nil {
		ev.Outcome, ev.Message = observe.OutcomeFailure, err.Error()
		if len(done) > 0 {
			ev.Outcome = observe.OutcomePartial
		}
	}
	g.audit(ev)
	return err
}

// auditRestore writes the audit line of a restore made elsewhere than into
// a directory (a Docker volume).
func auditRestore(g *globals, snaps []snapshot.Snapshot, into string, err error) {
	var last snapshot.Snapshot
	var done []snapshot.Restored
	for _, s := range snaps {
		last = s
		if err == nil {
			done = append(done, snapshot.Restored{Snapshot: s})
		}
	}
	g.audit(snapshot.RestoreAuditEvent(last, done, into, err))
}

// absPath makes a path absolute for the audit log, which outlives the
// working directory it was given in.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
