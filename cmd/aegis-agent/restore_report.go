package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/aegis-backup/aegis/reconcile/observe"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

// restoreReport says what each restored source holds: the summary on
// stdout (special files included), and every entry not restored on stderr
// and in agent.log, so that a partial restore never passes for a whole one.
type restoreReport struct {
	out, errOut io.Writer
	log         *slog.Logger
	target      string
	skipped     int
}

// newRestoreReport opens agent.log for the report; without it (no log
// directory, or one that cannot be written) the entries are only on stderr.
func newRestoreReport(g *globals, out, errOut io.Writer, target string) (*restoreReport, func()) {
	rep := &restoreReport{out: out, errOut: errOut, target: target, log: slog.New(slog.DiscardHandler)}
	if g.logDir == "" {
		return rep, func() {}
	}
	limits, err := g.logLimits()
	if err == nil {
		err = os.MkdirAll(g.logDir, 0o750)
	}
	var f io.WriteCloser
	if err == nil {
		f, err = observe.OpenRotating(g.logDir, observe.AgentLogName, limits, nil)
	}
	if err != nil {
		fmt.Fprintln(errOut, "aegis-agent: warning: cannot write agent.log:", err)
		return rep, func() {}
	}
	rep.log = slog.New(slog.NewJSONHandler(f, nil)).With("command", "restore")
	return rep, func() { f.Close() }
}

// restored reports one source.
func (rep *restoreReport) restored(r snapshot.Restored) {
	m, st := r.Snapshot.Manifest, r.Stats
	verb := "restored"
	if len(st.Skipped) > 0 {
		verb = "restored in part"
	}
	fmt.Fprintf(rep.out, "%s snapshot %s source %s from %s into %s: %d files, %d dirs, %d links, %s\n",
		verb, m.ID, m.Source, r.Snapshot.Destination, filepath.Join(rep.target, m.Source), st.Files, st.Dirs, st.Links, humanBytes(st.Bytes))
	for _, sp := range st.Special {
		fmt.Fprintf(rep.out, "  special: %s (%s)\n", sp.Name, sp.Kind)
	}
	for _, w := range st.Warnings {
		fmt.Fprintf(rep.out, "  warning: %s\n", w)
		rep.log.Warn("restore warning", "snapshot", m.ID, "source", m.Source, "warning", w)
	}
	if n := len(st.Skipped); n > 0 {
		rep.skipped += n
		fmt.Fprintf(rep.errOut, "aegis-agent: %d %s of source %s not restored:\n", n, plural(n, "entry", "entries"), m.Source)
		for _, s := range st.Skipped {
			fmt.Fprintf(rep.errOut, "aegis-agent: not restored: %s: %q: %s\n", m.Source, s.Name, s.Reason)
			rep.log.Warn("entry not restored", "snapshot", m.ID, "policy", m.Policy, "source", m.Source,
				"target", filepath.Join(rep.target, m.Source), "entry", s.Name, "reason", s.Reason)
		}
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
