package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/lmittmann/tint"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	v1 "github.com/aegis-backup/aegis/api/v1"
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
		newSnapshotsCommand(g),
		newRestoreCommand(g),
		newVerifyCommand(g),
		newStatusCommand(g),
		newPruneCommand(g),
		newKeysCommand(g),
		newInitCommand(g),
		newWebCommand(g),
	)
	documentCommands(root)
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
	a, err := reconcile.New(reconcile.Options{
		ConfigDir: g.configDir,
		StateDir:  g.stateDir,
		LogDir:    g.logDir,
		StatusDir: g.statusDir,
		Logger:    log,
		Now:       clock,

		MaxConcurrentRuns: g.maxRuns,
		SourceConcurrency: g.maxSources,
		Observe:           g.web.observe(g.observeOptions()),
	})
	if err != nil {
		return nil, failed(err)
	}
	return a, nil
}

func runAgent(ctx context.Context, g *globals) error {
	log, closeLog, err := g.logger(true)
	if err != nil {
		return err
	}
	defer closeLog()
	if _, err := os.Stat(g.configDir); err != nil {
		return invalid(fmt.Errorf("config directory: %w", err))
	}
	a, err := g.agent(log)
	if err != nil {
		return err
	}
	defer a.Close() // waits for the notifications in flight
	if err := serveMetrics(ctx, g, a, log); err != nil {
		return err
	}
	if err := serveWeb(ctx, g, a, log); err != nil {
		return err
	}
	if g.once {
		res, err := a.Once(ctx)
		if err != nil {
			return failed(err)
		}
		for name, r := range res.Results {
			log.Info("policy done", "policy", name, "result", r.Result, "snapshot", r.SnapshotID, "duration", r.Duration)
		}
		if len(res.Results) == 0 {
			log.Info("nothing was due")
		}
		if code := res.ExitCode(); code != exitOK {
			return silentExit(code)
		}
		return nil
	}
	reload := make(chan struct{}, 1)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	if err := a.Run(ctx, reload); err != nil {
		return failed(err)
	}
	return nil
}

func newValidateCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [PATH...]",
		Short: "Check manifests without touching anything",
		Long: `Check manifest files (or the manifest files of directories) and print every
problem at once, each as FILE:LINE: Kind/name: field.path: message.
Exit code 0 when all are valid, 2 otherwise.`,
		Example: `  aegis-agent validate                          # the config directory
  aegis-agent validate ./policies/ web.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{g.configDir}
			}
			cfg, err := reconcile.LoadConfig(args...)
			if err != nil {
				return invalid(err)
			}
			for _, e := range cfg.Errors {
				fmt.Fprintln(cmd.OutOrStdout(), e.Error())
			}
			if len(cfg.Errors) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d problem(s) in %d file(s)\n", len(cfg.Errors), len(cfg.Files))
				return silentExit(exitInvalid)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d object(s) in %d file(s) are valid\n", len(cfg.Objects), len(cfg.Files))
			return nil
		},
	}
}

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

// loadForRead reads the config for commands that only read from the
// destinations: an invalid manifest elsewhere does not stop them.
func (g *globals) loadForRead() (*reconcile.Config, error) {
	cfg, err := reconcile.LoadConfig(g.configDir)
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
				fmt.Fprintln(tw, "ID\tTIME\tHOST\tPOLICY\tSOURCE\tDESTINATION\tFILES\tSIZE")
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

// selectOpts are the flags that choose a snapshot.
type selectOpts struct {
	snapshot         string
	source           string
	from             string
	host             string
	identities       []string
	passphraseFile   string
	allowUnencrypted bool
}

func (s *selectOpts) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.snapshot, "snapshot", "latest", "snapshot ID (or a unique prefix), or latest")
	cmd.Flags().StringVar(&s.source, "source", "", "only this source")
	cmd.Flags().StringVar(&s.from, "from", "", "read from this destination (default: the policy's first that has the snapshot)")
	cmd.Flags().StringVar(&s.host, "host", "", "snapshots of this host (default: this host if it has any, else the only host there is)")
	cmd.Flags().StringArrayVar(&s.identities, "identity", nil, "age identity or openssl key file (repeatable); the keys directory is searched too")
	cmd.Flags().StringVar(&s.passphraseFile, "passphrase-file", "", "passphrase of a passphrase-protected --identity (default: asked on the terminal)")
	cmd.Flags().BoolVar(&s.allowUnencrypted, "allow-unencrypted", false, "accept snapshots without encryption although the policy encrypts (nothing proves who wrote them)")
}

// passphrase returns how to get the passphrase of a protected identity:
// from --passphrase-file, or asked on the terminal, or not at all.
func (s *selectOpts) passphrase() func(string) ([]byte, error) {
	if s.passphraseFile != "" {
		return func(string) ([]byte, error) { return snapshot.ReadPassphraseFile(s.passphraseFile) }
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil
	}
	tty.Close()
	return func(file string) ([]byte, error) {
		tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		defer tty.Close()
		fmt.Fprintf(tty, "Passphrase for %s: ", file)
		pass, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		return pass, err
	}
}

// keyRing gathers the keys restore and verify may use: --identity files,
// the policy's openssl key file, and the keys directory.
func (s *selectOpts) keyRing(g *globals, cfg *reconcile.Config, policy string) (*snapshot.KeyRing, error) {
	files := append([]string(nil), s.identities...)
	if p := cfg.Policy(policy); p != nil && p.Spec.Encryption != nil && p.Spec.Encryption.OpenSSL != nil {
		if _, err := os.Stat(p.Spec.Encryption.OpenSSL.KeyFile); err == nil {
			files = append(files, p.Spec.Encryption.OpenSSL.KeyFile)
		}
	}
	kr, err := snapshot.LoadKeyRing(files, g.keysDir, s.passphrase())
	if err == nil {
		mode := ""
		if p := cfg.Policy(policy); p != nil && p.Spec.Encryption != nil {
			mode = p.Spec.Encryption.Mode()
		}
		kr.AcceptMode(mode, s.allowUnencrypted)
	}
	if err != nil {
		return nil, failed(err)
	}
	return kr, nil
}

// find locates the snapshots of one run of policy on the first destination
// that has it.
func (s *selectOpts) find(ctx context.Context, cfg *reconcile.Config, policy string) (drivers.Destination, []snapshot.Snapshot, error) {
	names, err := destinationsFor(cfg, policy, s.from)
	if err != nil {
		return nil, nil, err
	}
	host := s.host
	var lastErr error
	for _, n := range names {
		d, err := openDestination(cfg, n)
		if err != nil {
			lastErr = err
			continue
		}
		snaps, bad, err := snapshot.ListSnapshotsLenient(ctx, d, n, policy)
		if err != nil {
			d.Close()
			lastErr = failed(err)
			continue
		}
		for _, b := range bad {
			fmt.Fprintln(os.Stderr, "aegis-agent: warning: skipped a snapshot:", b)
		}
		h := host
		if h == "" {
			me, _ := os.Hostname()
			for _, sn := range snaps {
				if sn.Manifest.Host == me {
					h = me
					break
				}
			}
		}
		sel, err := snapshot.SelectSnapshot(snaps, s.snapshot, h, s.source)
		if err != nil {
			d.Close()
			lastErr = failed(fmt.Errorf("destination %s: %w", n, err))
			continue
		}
		return d, sel, nil
	}
	if lastErr == nil {
		lastErr = failed(fmt.Errorf("policy %s has no destination", policy))
	}
	return nil, nil, lastErr
}

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

func newVerifyCommand(g *globals) *cobra.Command {
	var sel selectOpts
	cmd := &cobra.Command{
		Use:   "verify [POLICY]",
		Short: "Prove snapshots are whole and decryptable without unpacking them",
		Example: `  aegis-agent verify web --identity /root/aegis.key
  aegis-agent verify web --snapshot latest`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadForRead()
			if err != nil {
				return err
			}
			var policies []string
			if len(args) == 1 {
				policies = args
			} else {
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
					r := verifyOne(cmd.Context(), g, d, s, keys)
					if r.Err != nil {
						fmt.Fprintf(cmd.OutOrStdout(), "FAIL %s/%s %s on %s: %v\n", p, s.Manifest.Source, s.Manifest.ID, s.Destination, r.Err)
						bad++
						continue
					}
					fmt.Fprintf(cmd.OutOrStdout(), "ok   %s/%s %s on %s: %d object(s), %s of data\n", p, s.Manifest.Source, s.Manifest.ID, s.Destination, r.Objects, humanBytes(r.Bytes))
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
	return cmd
}
