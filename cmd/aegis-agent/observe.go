package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile"
	"github.com/aegis-backup/aegis/reconcile/observe"
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

// progress is the progress of this command, nil when it shows none.
func (g *globals) progress() observe.Progress {
	if g.obs.progress == nil {
		return nil
	}
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

// envInt reads a positive integer from the environment, or returns def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
