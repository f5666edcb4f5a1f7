package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/files"
	"github.com/aegis-backup/aegis/reconcile"
	"github.com/aegis-backup/aegis/reconcile/observe"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

// obsFlags are the flags of metrics, log bounds and progress.
type obsFlags struct {
	metricsAddr     string
	metricsTextfile string
	logMaxSize      string
	logMaxFiles     int
	logMaxAge       string
	logMaxTotal     string
	noProgress      bool

	// command is the command being run ("run", "keys rotate"); empty for
	// the agent itself (with or without --once).
	command string
	// progress draws progress bars on the terminal, when this command
	// shows any.
	progress *termProgress
}

func (o *obsFlags) register(persistent, root *pflag.FlagSet) {
	root.StringVar(&o.metricsAddr, "metrics-addr", envOr("AEGIS_METRICS_ADDR", ""), "serve Prometheus metrics, /healthz and /readyz on this address, such as 127.0.0.1:9917 (default off) (env AEGIS_METRICS_ADDR)")
	root.StringVar(&o.metricsTextfile, "metrics-textfile", envOr("AEGIS_METRICS_TEXTFILE", ""), "write the metrics to this file after every pass, for node_exporter's textfile collector (env AEGIS_METRICS_TEXTFILE)")
	persistent.StringVar(&o.logMaxSize, "log-max-size", envOr("AEGIS_LOG_MAX_SIZE", "10MiB"), "rotate agent.log, retention.log and audit.jsonl at this size (env AEGIS_LOG_MAX_SIZE)")
	persistent.IntVar(&o.logMaxFiles, "log-max-files", envInt("AEGIS_LOG_MAX_FILES", observe.DefaultLogMaxFiles), "rotated copies kept of agent.log and of retention.log (env AEGIS_LOG_MAX_FILES)")
	persistent.StringVar(&o.logMaxAge, "log-max-age", envOr("AEGIS_LOG_MAX_AGE", "90d"), "remove run logs and rotated logs older than this (audit logs excepted) (env AEGIS_LOG_MAX_AGE)")
	persistent.StringVar(&o.logMaxTotal, "log-max-total", envOr("AEGIS_LOG_MAX_TOTAL", "256MiB"), "bound on the disk use of the log directory; the oldest logs go first, audit logs last (env AEGIS_LOG_MAX_TOTAL)")
	persistent.BoolVar(&o.noProgress, "no-progress", os.Getenv("AEGIS_NO_PROGRESS") != "", "no progress bars, even on a terminal (env AEGIS_NO_PROGRESS)")
}

// commandName names the command running for the audit log: "" for the
// agent, else its path below the root ("run", "keys rotate").
func commandName(cmd *cobra.Command) string {
	path := strings.Fields(cmd.CommandPath())
	if len(path) <= 1 {
		return ""
	}
	return strings.Join(path[1:], " ")
}

// logLimits parses the log bounds.
func (g *globals) logLimits() (observe.LogLimits, error) {
	var l observe.LogLimits
	var err error
	if l.MaxSize, err = observe.ParseByteSize(g.obs.logMaxSize); err != nil {
		return l, fmt.Errorf("--log-max-size: %w", err)
	}
	if l.MaxTotal, err = observe.ParseByteSize(g.obs.logMaxTotal); err != nil {
		return l, fmt.Errorf("--log-max-total: %w", err)
	}
	if l.MaxAge, err = v1.ParseRetentionDuration(g.obs.logMaxAge); err != nil {
		return l, fmt.Errorf("--log-max-age: %w", err)
	}
	if g.obs.logMaxFiles < 1 {
		return l, fmt.Errorf("--log-max-files: must be at least 1")
	}
	l.MaxFiles = g.obs.logMaxFiles
	if err := l.Check(); err != nil {
		return l, fmt.Errorf("--log-max-total: %w", err)
	}
	return l, nil
}

// observeOptions are the agent's options for metrics, audit, notifications
// and progress.
func (g *globals) observeOptions() reconcile.ObserveOptions {
	limits, _ := g.logLimits() // checked by the logger first
	o := reconcile.ObserveOptions{
		Command:         g.obs.command,
		LogLimits:       limits,
		MetricsTextfile: g.obs.metricsTextfile,
	}
	if g.obs.command != "" {
		o.Actor = observe.CurrentActor()
	}
	if g.obs.progress != nil {
		o.Progress = g.obs.progress
	}
	return o
}

// audit writes one line to the audit log for a command run by hand;
// a failure to write it is reported and does not fail the command.
func (g *globals) audit(ev observe.AuditEvent) {
	if g.logDir == "" {
		return
	}
	limits, err := g.logLimits()
	if err != nil {
		limits = observe.LogLimits{}
	}
	host, _ := os.Hostname()
	al, err := observe.OpenAudit(g.logDir, limits, host, observe.CurrentActor(), nil)
	if err == nil {
		if ev.Command == "" {
			ev.Command = g.obs.command
		}
		err = al.Record(ev)
		if cerr := al.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "aegis-agent: warning: cannot write the audit log:", err)
	}
}

func outcomeOf(err error) string {
	if err != nil {
		return observe.OutcomeFailure
	}
	return observe.OutcomeSuccess
}

func messageOf(err error) string {
	if err != nil {
		return err.Error()
	}
	return ""
}

// startProgress sets up progress bars for an interactive command: only when
// stderr is a terminal and --no-progress is not given.
func (g *globals) startProgress() *termProgress {
	if g.obs.noProgress || !isTerminal(os.Stderr) {
		return nil
	}
	g.obs.progress = newTermProgress(os.Stderr)
	return g.obs.progress
}

// serveMetrics starts the metrics endpoint of the agent, when asked for.
func serveMetrics(ctx context.Context, g *globals, a *reconcile.Agent, log *slog.Logger) error {
	if g.obs.metricsAddr == "" {
		return nil
	}
	addr, err := a.Metrics().Serve(ctx, g.obs.metricsAddr, log)
	if err != nil {
		return invalid(err)
	}
	log.Info("serving metrics", "addr", addr.String(), "endpoints", "/metrics /healthz /readyz")
	return nil
}

// restoreAll restores the snapshots of one run, one source after the
// other, with a progress bar each on a terminal, runs then (loading the
// dumps into loadInto, when set), and writes one audit line for it all.
func restoreAll(cmd *cobra.Command, g *globals, d drivers.Destination, snaps []snapshot.Snapshot, target string, keys *snapshot.KeyRing, loadInto string, then func() error) error {
	prog := g.obs.progress
	out := cmd.OutOrStdout()
	if prog != nil {
		out = prog.Wrap(out)
	}
	ev := observe.AuditEvent{Action: observe.AuditRestoreRun, File: absPath(target)}
	var err error
	for _, s := range snaps {
		m := s.Manifest
		ev.Object = "Snapshot/" + m.Host + "/" + m.Policy + "/" + m.ID
		ev.Policy, ev.Snapshot, ev.Destination = m.Policy, m.ID, s.Destination
		src := d
		item := fmt.Sprintf("restore %s ← %s", m.Source, s.Destination)
		if prog != nil {
			prog.Begin(item, readTotal(s))
			src = observe.ProgressDestination(d, prog, item)
		}
		var st files.ExtractStats
		st, err = snapshot.Restore(cmd.Context(), src, s, snapshot.RestoreOptions{Target: target, Keys: keys})
		if prog != nil {
			prog.End(item, err)
		}
		if err != nil {
			err = fmt.Errorf("restore %s/%s from %s: %w", m.Policy, m.Source, s.Destination, err)
			break
		}
		ev.Sources = append(ev.Sources, m.Source)
		ev.Bytes += st.Bytes
		fmt.Fprintf(out, "restored snapshot %s source %s from %s into %s: %d files, %d dirs, %s\n",
			m.ID, m.Source, s.Destination, filepath.Join(target, m.Source), st.Files, st.Dirs, humanBytes(st.Bytes))
	}
	if prog != nil {
		prog.Close()
	}
	if err != nil {
		err = failed(err)
	} else if then != nil {
		err = then()
		if loadInto != "" {
			ev.File += ", loaded into " + loadInto
		}
	}
	ev.Outcome, ev.Message = outcomeOf(err), messageOf(err)
	if err != nil && len(ev.Sources) > 0 {
		ev.Outcome = observe.OutcomePartial
	}
	g.audit(ev)
	return err
}

// auditRestore writes the audit line of a restore made elsewhere than into
// a directory (a Docker volume).
func auditRestore(g *globals, snaps []snapshot.Snapshot, into string, err error) {
	ev := observe.AuditEvent{Action: observe.AuditRestoreRun, File: into, Outcome: outcomeOf(err), Message: messageOf(err)}
	for _, s := range snaps {
		m := s.Manifest
		ev.Object = "Snapshot/" + m.Host + "/" + m.Policy + "/" + m.ID
		ev.Policy, ev.Snapshot, ev.Destination = m.Policy, m.ID, s.Destination
		if err == nil {
			ev.Sources = append(ev.Sources, m.Source)
		}
	}
	g.audit(ev)
}

// readTotal is how many bytes restoring or verifying s reads: every object
// once (twice in openssl mode, which checks each object before decrypting
// it).
func readTotal(s snapshot.Snapshot) int64 {
	if s.Manifest.Encryption.Algorithm == "openssl" {
		return 2 * s.Size
	}
	return s.Size
}

// verifyOne verifies one snapshot with a progress bar on a terminal.
func verifyOne(ctx context.Context, g *globals, d drivers.Destination, s snapshot.Snapshot, keys *snapshot.KeyRing) snapshot.VerifyResult {
	prog := g.obs.progress
	if prog == nil {
		return snapshot.Verify(ctx, d, s, keys)
	}
	item := fmt.Sprintf("verify %s/%s @ %s", s.Manifest.Policy, s.Manifest.Source, s.Destination)
	prog.Begin(item, s.Size)
	r := snapshot.Verify(ctx, observe.ProgressDestination(d, prog, item), s, keys)
	prog.End(item, r.Err)
	return r
}

// absPath makes a path absolute for the audit log, which outlives the
// working directory it was given in.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// envInt reads a positive integer from the environment, or returns def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
