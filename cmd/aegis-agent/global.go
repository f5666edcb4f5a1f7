package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"time"

	"github.com/lmittmann/tint"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/registry"
	"github.com/aegis-backup/aegis/reconcile"
	"github.com/aegis-backup/aegis/reconcile/observe"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

// globals are the flags every command accepts, each with an environment twin.
type globals struct {
	configDir string
	stateDir  string
	logDir    string
	statusDir string
	logFormat string
	logLevel  string
	keysDir   string
	once      bool

	maxRuns    int
	maxSources int
	obs        obsFlags
	web        webFlags

	// priority and stallTimeout are the flags of the commands that back
	// up: the agent (with or without --once) and run.
	priority     string
	stallTimeout string
}

// registerBackupFlags defines the flags of the commands that back up.
func (g *globals) registerBackupFlags(fs *pflag.FlagSet) {
	fs.StringVar(&g.priority, "priority", envOr("AEGIS_PRIORITY", "low"), "CPU and I/O priority of backups: low (nice 10, I/O best-effort 7, inherited by hooks and dump tools) or normal (as started) (env AEGIS_PRIORITY)")
	fs.StringVar(&g.stallTimeout, "stall-timeout", envOr("AEGIS_STALL_TIMEOUT", snapshot.DefaultStallTimeout.String()), "how long a destination may take no data before it drops out of a run (env AEGIS_STALL_TIMEOUT)")
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func newRootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "aegis-agent",
		Short: "Back up Linux servers as BackupPolicy and Destination manifests say",
		Long: `aegis-agent watches a directory of manifests (kinds BackupPolicy and Destination),
runs each policy when its schedule says, applies retention, and writes each
object's status into a NAME.status.yaml sidecar beside its manifest.

Without a command it runs as the agent until stopped; with --once it runs one
reconcile pass and exits.`,
		Example: `  aegis-agent                      # the agent, as systemd runs it
  aegis-agent --once               # one pass: run what is due, then exit (CI, cron)
  aegis-agent validate /etc/aegis/policies.d`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd.Context(), g)
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.configDir, "config-dir", envOr("AEGIS_CONFIG_DIR", "/etc/aegis/policies.d"), "directory of manifests (env AEGIS_CONFIG_DIR)")
	pf.StringVar(&g.stateDir, "state-dir", envOr("AEGIS_STATE_DIR", "/var/lib/aegis"), "the agent's recorded state (env AEGIS_STATE_DIR)")
	pf.StringVar(&g.logDir, "log-dir", envOr("AEGIS_LOG_DIR", "/var/log/aegis"), "run logs and agent.log (env AEGIS_LOG_DIR)")
	pf.StringVar(&g.statusDir, "status-dir", envOr("AEGIS_STATUS_DIR", ""), "where status sidecars go; default beside each manifest (env AEGIS_STATUS_DIR)")
	pf.StringVar(&g.logFormat, "log-format", envOr("AEGIS_LOG_FORMAT", "text"), "text or json (env AEGIS_LOG_FORMAT)")
	pf.StringVar(&g.logLevel, "log-level", envOr("AEGIS_LOG_LEVEL", "info"), "debug, info, warn or error (env AEGIS_LOG_LEVEL)")
	pf.StringVar(&g.keysDir, "keys-dir", envOr("AEGIS_KEYS_DIR", "/etc/aegis/keys"), "key files: where keys generate/rotate write and restore/verify look (env AEGIS_KEYS_DIR)")
	root.Flags().BoolVar(&g.once, "once", false, "run one reconcile pass and exit")
	pf.IntVar(&g.maxRuns, "max-concurrent-runs", envInt("AEGIS_MAX_CONCURRENT_RUNS", 2), "policies backed up at once (env AEGIS_MAX_CONCURRENT_RUNS)")
	pf.IntVar(&g.maxSources, "source-concurrency", envInt("AEGIS_SOURCE_CONCURRENCY", 2), "sources of one policy backed up at once (env AEGIS_SOURCE_CONCURRENCY)")
	g.obs.register(pf, root.Flags())
	g.web.register(root.Flags())
	g.registerBackupFlags(root.Flags())
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		g.obs.command = commandName(cmd)
		if _, err := g.logLimits(); err != nil {
			return invalid(err)
		}
		return nil
	}

	root.AddCommand(
		newValidateCommand(g),
		newRunCommand(g),
		newDrillCommand(g),
		newSnapshotsCommand(g),
		newRestoreCommand(g),
		newVerifyCommand(g),
		newStatusCommand(g),
		newPruneCommand(g),
		newKeysCommand(g),
		newInitCommand(g),
		newWebCommand(g),
		newVersionCommand(),
	)
	setVersion(root)
	documentCommands(root)
	trimCompletionCommands(root)
	completeCommands(root, g)
	return root
}

// logger builds the slog logger: tint on a terminal (plain when piped), JSON
// with --log-format json, and, when agentLog is set, also JSON lines in
// LOG_DIR/agent.log.
func (g *globals) logger(agentLog bool) (*slog.Logger, func(), error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, nil, invalid(fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", g.logLevel))
	}
	var stderr io.Writer = os.Stderr
	if g.obs.progress != nil {
		stderr = g.obs.progress // log lines go above the progress bars
	}
	var h slog.Handler
	switch g.logFormat {
	case "json":
		h = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	case "text":
		h = tint.NewTextHandler(stderr, &tint.Options{
			Level:      level,
			TimeFormat: time.DateTime,
			NoColor:    !term.IsTerminal(int(os.Stderr.Fd())),
		})
	default:
		return nil, nil, invalid(fmt.Errorf("--log-format: %q is not text or json", g.logFormat))
	}
	closeFn := func() {}
	if agentLog && g.logDir != "" {
		if err := os.MkdirAll(g.logDir, 0o750); err != nil {
			return nil, nil, failed(fmt.Errorf("log directory: %w", err))
		}
		limits, err := g.logLimits()
		if err != nil {
			return nil, nil, invalid(err)
		}
		f, err := observe.OpenRotating(g.logDir, observe.AgentLogName, limits, nil)
		if err != nil {
			return nil, nil, failed(fmt.Errorf("agent log: %w", err))
		}
		h = slog.NewMultiHandler(h, slog.NewJSONHandler(f, &slog.HandlerOptions{Level: level}))
		closeFn = func() { f.Close() }
	}
	return slog.New(h), closeFn, nil
}

func (g *globals) agent(log *slog.Logger) (*reconcile.Agent, error) {
	clock, err := agentClock()
	if err != nil {
		return nil, invalid(err)
	}
	if clock != nil {
		log.Warn("the clock is simulated (" + testNowEnv + " is set): for tests only")
	}
	stall, err := time.ParseDuration(g.stallTimeout)
	if err != nil || stall <= 0 {
		return nil, invalid(fmt.Errorf("--stall-timeout: %q is not a positive duration such as 2m", g.stallTimeout))
	}
	a, err := reconcile.New(reconcile.Options{
		ConfigDir: g.configDir,
		StateDir:  g.stateDir,
		LogDir:    g.logDir,
		StatusDir: g.statusDir,
		Logger:    log,
		Now:       clock,

		MaxConcurrentRuns: g.maxRuns,
		SourceConcurrency: g.maxSources,
		StallTimeout:      stall,
		Observe:           g.web.observe(g.observeOptions()),
		KeysDir:           g.keysDir,
	})
	if err != nil {
		return nil, failed(err)
	}
	return a, nil
}

// loadForRead reads the config for commands that only read from the
// destinations: an invalid manifest elsewhere does not stop them, and a
// policy or destination invalid today is reached by its last valid
// version, so that no listing or restore depends on today's manifest.
func (g *globals) loadForRead() (*reconcile.Config, error) {
	cfg, err := reconcile.LoadConfigWithState(g.configDir, g.stateDir)
	if err != nil {
		return nil, invalid(err)
	}
	return cfg, nil
}

// destinationsFor returns the names of the destinations to read: one named
// with --destination, those of a policy, or all.
func destinationsFor(cfg *reconcile.Config, policy, only string) ([]string, error) {
	all := cfg.AllDestinations()
	if only != "" {
		if _, ok := all[only]; !ok {
			return nil, invalid(fmt.Errorf("destination %q not found", only))
		}
		return []string{only}, nil
	}
	if policy != "" {
		p := cfg.Policy(policy)
		if p == nil {
			return nil, invalid(fmt.Errorf("policy %q not found", policy))
		}
		return p.Spec.Destinations, nil
	}
	var names []string
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

func openDestination(cfg *reconcile.Config, name string) (drivers.Destination, error) {
	d, ok := cfg.AllDestinations()[name]
	if !ok {
		return nil, invalid(fmt.Errorf("destination %q not found", name))
	}
	dst, err := registry.Destination(d, registry.Options{})
	if err != nil {
		return nil, failed(err)
	}
	return dst, nil
}

// humanBytes is the one way sizes are shown: bytes below 1 KiB, else
// binary units with one decimal (1.5 KiB = 1536 bytes).
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
