package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/cmd/aegis-agent/internal/setup"
	"github.com/aegis-backup/aegis/reconcile"
	"github.com/aegis-backup/aegis/reconcile/atomicfile"
)

// initFlags are the flags of init: where it writes, and the answers
// --non-interactive takes from the command line.
type initFlags struct {
	nonInteractive bool
	answersFile    string
	saveAnswers    string
	secretsDir     string
	dryRun         bool
	skipChecks     bool
	firstBackup    bool
	accessible     bool

	policy           string
	destinations     []string
	sources          []string
	encryption       string
	ageRecipients    []string
	ageRecipientFile string
	ageIdentity      string
	opensslKeyFile   string
	schedule         string
	timeZone         string
	retention        string
	pingURL          string
	webhooks         []string
	notifyOnSuccess  bool
}

func newInitCommand(g *globals) *cobra.Command {
	f := &initFlags{}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "The guided setup: asks, validates each answer, writes manifests",
		Long:  initLong,
		Example: `  aegis-agent init                                # the guided setup
  aegis-agent init --policy db                    # edit policy db, or set up a second one

  # the same without a terminal
  aegis-agent init --non-interactive --policy web \
    --destination type=local,path=/var/backups/aegis \
    --source type=files,path=/var/www,exclude='**/cache/**' \
    --schedule '0 * * * *' --retention hourly=24,daily=7,weekly=4,monthly=12

  PGPASSWORD=... aegis-agent init --non-interactive --answers web.answers.yaml \
    --source type=postgres,host=db.internal,user=backup,password-env=PGPASSWORD

  aegis-agent init --non-interactive --save-answers web.answers.yaml   # record an existing setup`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dirs := setup.Dirs{Config: g.configDir, Keys: g.keysDir, Secrets: f.secretsDir}
			if f.nonInteractive || f.dryRun {
				return runInitNonInteractive(cmd, g, f, dirs)
			}
			if !f.accessible && (!term.IsTerminal(int(os.Stdin.Fd())) || !term.IsTerminal(int(os.Stdout.Fd()))) {
				return invalid(errors.New("the guided setup needs a terminal: run it in one, or use --non-interactive with flags or --answers FILE (see aegis-agent init --help)"))
			}
			return runWizard(cmd.Context(), cmd, g, f, dirs)
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// register defines init's flags on fl.
func (f *initFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&f.nonInteractive, "non-interactive", false, "take the answers from --answers and the flags; ask nothing")
	fl.StringVar(&f.answersFile, "answers", "", "answers file (YAML; - for standard input)")
	fl.StringVar(&f.saveAnswers, "save-answers", "", "write the answers (without secrets) to this file, for --answers")
	fl.StringVar(&f.secretsDir, "secrets-dir", envOr("AEGIS_SECRETS_DIR", "/etc/aegis/secrets"), "where credentials go, mode 0600 (env AEGIS_SECRETS_DIR)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the manifests instead of writing anything (implies --non-interactive)")
	fl.BoolVar(&f.skipChecks, "skip-checks", false, "do not connect to buckets, servers and databases to check the answers")
	fl.BoolVar(&f.firstBackup, "first-backup", false, "with --non-interactive: run a first backup and verify it")
	fl.BoolVar(&f.accessible, "accessible", os.Getenv("ACCESSIBLE") != "", "plain line-by-line prompts, for screen readers (env ACCESSIBLE)")

	fl.StringVar(&f.policy, "policy", "", "name of the BackupPolicy to set up or edit (default: the only one there is, else this host's name)")
	fl.StringArrayVar(&f.destinations, "destination", nil, "a destination: type=local|s3|sftp|ftp,key=value,... (repeatable)")
	fl.StringArrayVar(&f.sources, "source", nil, "a source: type=files|postgres|mysql|docker-volume|system,key=value,... (repeatable)")
	fl.StringVar(&f.encryption, "encryption", "", "age (default), openssl or none")
	fl.StringArrayVar(&f.ageRecipients, "age-recipient", nil, "age public key to encrypt to (repeatable; default: generate a key)")
	fl.StringVar(&f.ageRecipientFile, "age-recipients-file", "", "file of age public keys to encrypt to")
	fl.StringVar(&f.ageIdentity, "age-identity", "", "where the generated age identity goes (default KEYS_DIR/POLICY.key; used if it exists)")
	fl.StringVar(&f.opensslKeyFile, "openssl-key-file", "", "openssl key file (default KEYS_DIR/POLICY-openssl.key; generated if missing)")
	fl.StringVar(&f.schedule, "schedule", "", `when to back up: 5 cron fields or @hourly/@daily/@weekly/@every 6h (default "0 * * * *")`)
	fl.StringVar(&f.timeZone, "time-zone", "", "IANA time zone of the schedule (default: this host's)")
	fl.StringVar(&f.retention, "retention", "", "what to keep: hourly=24,daily=7,weekly=4,monthly=12,yearly=N,keep-last=N,within=7d")
	fl.StringVar(&f.pingURL, "ping-url", "", "healthchecks.io-style URL pinged on every run (URL/start, URL, URL/fail)")
	fl.StringArrayVar(&f.webhooks, "webhook", nil, "URL that gets a JSON body with the result of a failed run, and of the first good one after (repeatable)")
	fl.BoolVar(&f.notifyOnSuccess, "notify-on-success", false, "send the webhooks after every successful run too")
}

const initLong = `Set up backups step by step: where backups go (a local disk, S3 and the
S3-compatible clouds, SFTP or FTP), what to back up (files, PostgreSQL,
MySQL/MariaDB, Docker volumes, the system's configuration), encryption (age
by default: init generates the key), schedule and retention, and how to be
told about failures. Each answer is checked as it is given: paths must
exist, and a bucket or database must accept the credentials.

init then shows the manifests, writes them into --config-dir as POLICY.yaml
(secrets go into separate files of mode 0600 under --secrets-dir, keys under
--keys-dir), validates them, and offers a first backup and its verification.
Run it again to edit that setup: its answers are the defaults.

With --non-interactive, init takes the answers from --answers FILE and the
flags instead (for scripts and Ansible), and writes byte for byte what the
wizard writes for the same answers. Flags override the answers file, which
overrides the existing setup. --save-answers FILE records the answers
(without secrets) for the next server.

--destination and --source take comma-separated key=value pairs; repeat a
key for a list (path=/etc,path=/srv). Secrets come from a variable or a
file, never from the command line: KEY-env=VARIABLE or KEY-from-file=PATH
for password, access-key-id and secret-access-key.
  --destination type=local,path=DIR[,name=NAME]
  --destination type=s3,provider=aws|b2|gcs|wasabi|digitalocean|minio|other,bucket=B,
                region=R,endpoint=URL,prefix=P,storage-class=C,credentials-file=F
  --destination type=sftp,host=H,port=N,user=U,path=DIR,private-key-file=F,
                known-hosts-file=F,password-file=F
  --destination type=ftp,host=H,port=N,user=U,path=DIR,tls=none|explicit|implicit,
                ca-file=F,password-file=F
  --source type=files,path=P,exclude=GLOB,one-file-system=true
  --source type=postgres,host=H|SOCKETDIR,port=N,user=U,database=D,globals=false
  --source type=mysql,host=H,port=N,socket=S,user=U,database=D
  --source type=docker-volume,volume=NAME|label=KEY=VALUE,stop-containers=true
  --source type=system,extra-path=P`

// answersFromFlags builds the answers of --non-interactive: the existing
// setup (or the defaults), then the answers file, then the flags. It
// returns the problems of the flags' values besides the answers, so that
// they are reported with every other problem.
func answersFromFlags(cmd *cobra.Command, f *initFlags, dirs setup.Dirs) (*setup.Answers, string, []error, error) {
	existing, _, err := setup.LoadExisting(dirs, f.policy)
	if err != nil {
		return nil, "", nil, invalid(err)
	}
	a := setup.NewAnswers()
	file := ""
	if existing != nil {
		a, file = existing.Answers, existing.File
	}
	if f.answersFile != "" {
		if a, err = setup.ReadAnswersFile(f.answersFile); err != nil {
			return nil, "", nil, invalid(err)
		}
		if existing != nil && a.Policy != existing.Answers.Policy {
			file = ""
		}
	}
	changed := cmd.Flags().Changed
	errs := applyListFlags(a, f, changed)
	applyEncryptionFlags(a, f, changed)
	if changed("policy") {
		a.Policy = f.policy
	}
	if changed("schedule") {
		a.Schedule = f.schedule
	}
	if changed("time-zone") {
		a.TimeZone = f.timeZone
	}
	if changed("retention") {
		r, err := setup.RetentionFromFlag(f.retention)
		errs = append(errs, err)
		a.Retention = r
	}
	applyNotifyFlags(a, f, changed)
	var problems []error
	for _, err := range errs {
		if err != nil {
			problems = append(problems, err)
		}
	}
	return a, file, problems, nil
}

// applyListFlags sets the destinations and sources the flags give,
// returning the problems of their values (nil for those without).
func applyListFlags(a *setup.Answers, f *initFlags, changed func(string) bool) []error {
	var errs []error
	if changed("destination") {
		a.Destinations, a.OtherDestinations = nil, nil
		for _, s := range f.destinations {
			d, err := setup.DestinationFromFlag(s)
			errs = append(errs, err)
			a.Destinations = append(a.Destinations, d)
		}
	}
	if changed("source") {
		a.Sources = nil
		for _, s := range f.sources {
			src, err := setup.SourceFromFlag(s)
			errs = append(errs, err)
			a.Sources = append(a.Sources, src)
		}
	}
	return errs
}

// applyEncryptionFlags sets the encryption the flags give; the later flags
// of the list win.
func applyEncryptionFlags(a *setup.Answers, f *initFlags, changed func(string) bool) {
	if changed("encryption") {
		a.Encryption = setup.EncryptionAnswer{Mode: f.encryption}
	}
	if changed("age-recipient") || changed("age-recipients-file") {
		a.Encryption = setup.EncryptionAnswer{Mode: "age", Recipients: f.ageRecipients, RecipientsFile: f.ageRecipientFile}
	}
	if changed("age-identity") {
		a.Encryption.Mode, a.Encryption.IdentityFile = "age", f.ageIdentity
		if !changed("age-recipient") {
			a.Encryption.Recipients = nil
		}
	}
	if changed("openssl-key-file") {
		a.Encryption = setup.EncryptionAnswer{Mode: "openssl", KeyFile: f.opensslKeyFile}
	}
}

// applyNotifyFlags merges the notification flags into the answers'.
func applyNotifyFlags(a *setup.Answers, f *initFlags, changed func(string) bool) {
	if !changed("ping-url") && !changed("webhook") && !changed("notify-on-success") {
		return
	}
	n := v1.Notify{}
	if a.Notify != nil {
		n = *a.Notify
	}
	if changed("ping-url") {
		n.Ping = f.pingURL
	}
	if changed("webhook") {
		n.Webhooks = nil
		for _, u := range f.webhooks {
			n.Webhooks = append(n.Webhooks, v1.WebhookNotify{URL: u})
		}
	}
	if changed("notify-on-success") {
		n.OnSuccess = f.notifyOnSuccess
	}
	a.Notify = nil
	if n.Ping != "" || len(n.Webhooks) > 0 {
		a.Notify = &n
	}
}

func runInitNonInteractive(cmd *cobra.Command, g *globals, f *initFlags, dirs setup.Dirs) error {
	out := cmd.OutOrStdout()
	a, file, errs, err := answersFromFlags(cmd, f, dirs)
	if err != nil {
		return err
	}
	if errs = append(append(errs, setup.CheckAnswers(a)...), setup.ResolveSecrets(a)...); len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintln(cmd.ErrOrStderr(), "aegis-agent init:", e)
		}
		return silentExit(exitInvalid)
	}
	if !f.skipChecks {
		var bad bool
		for _, r := range liveChecks(cmd.Context(), a) {
			switch {
			case r.Err != nil:
				fmt.Fprintf(cmd.ErrOrStderr(), "aegis-agent init: %s: %v\n", r.What, r.Err)
				bad = true
			case !r.Checked:
				fmt.Fprintf(cmd.ErrOrStderr(), "aegis-agent init: %s: not checked (this build cannot connect to it yet)\n", r.What)
			}
		}
		if bad {
			return silentExit(exitInvalid)
		}
	}
	plan, err := setup.Prepare(a, dirs, file)
	if err != nil {
		return invalid(err)
	}
	if len(plan.Problems) > 0 {
		for _, p := range plan.Problems {
			fmt.Fprintln(cmd.ErrOrStderr(), p.Error())
		}
		return silentExit(exitInvalid)
	}
	if f.dryRun {
		_, err := out.Write(plan.Manifest)
		return err
	}
	if err := finishSetup(cmd.Context(), out, g, f, dirs, a, plan); err != nil {
		return err
	}
	if f.firstBackup {
		if err := firstBackup(cmd.Context(), out, cmd.ErrOrStderr(), g, a); err != nil {
			return err
		}
	}
	return nil
}

// liveChecks checks every remote destination and database source.
func liveChecks(ctx context.Context, a *setup.Answers) []setup.LiveResult {
	var out []setup.LiveResult
	for _, d := range a.Destinations {
		if d.Local == nil {
			out = append(out, setup.CheckDestinationLive(ctx, d))
		}
	}
	for _, s := range a.Sources {
		if s.Postgres != nil || s.MySQL != nil || s.DockerVolume != nil {
			out = append(out, setup.CheckSourceLive(ctx, s))
		}
	}
	return out
}

// finishSetup writes what plan says, validates the config directory as the
// agent will read it, and saves the answers when asked.
func finishSetup(ctx context.Context, out io.Writer, g *globals, f *initFlags, dirs setup.Dirs, a *setup.Answers, plan *setup.Plan) error {
	wrote, err := setup.Write(plan, dirs)
	for _, w := range wrote {
		fmt.Fprintf(out, "wrote %s\n", w)
	}
	if err != nil {
		return failed(err)
	}
	if f.saveAnswers != "" {
		body, err := setup.MarshalAnswers(a)
		if err != nil {
			return failed(err)
		}
		if err := atomicfile.Write(f.saveAnswers, body, 0o600); err != nil {
			return failed(fmt.Errorf("save answers: %w", err))
		}
		fmt.Fprintf(out, "wrote %s (answers, for aegis-agent init --non-interactive --answers)\n", f.saveAnswers)
	}
	cfg, err := reconcile.LoadConfig(g.configDir)
	if err != nil {
		return invalid(err)
	}
	if len(cfg.Errors) > 0 {
		for _, e := range cfg.Errors {
			fmt.Fprintln(out, e.Error())
		}
		return invalid(fmt.Errorf("%s does not validate: %d problem(s) (some may be in other files)", g.configDir, len(cfg.Errors)))
	}
	fmt.Fprintf(out, "validate: %d object(s) in %d file(s) of %s are valid\n", len(cfg.Objects), len(cfg.Files), g.configDir)
	return nil
}

// selfArgs are the global flags that make a child aegis-agent use the same
// directories as this one.
func selfArgs(g *globals, args ...string) []string {
	out := []string{"--config-dir", g.configDir, "--state-dir", g.stateDir, "--log-dir", g.logDir, "--keys-dir", g.keysDir}
	if g.statusDir != "" {
		out = append(out, "--status-dir", g.statusDir)
	}
	return append(out, args...)
}

// runSelf runs another aegis-agent command, as the user would type it, with
// its output on ours.
func runSelf(ctx context.Context, stdout, stderr io.Writer, g *globals, args ...string) error {
	exe, err := os.Executable()
	if err != nil {
		return failed(err)
	}
	fmt.Fprintf(stdout, "\n$ aegis-agent %s\n", strings.Join(args, " "))
	c := exec.CommandContext(ctx, exe, selfArgs(g, args...)...)
	c.Stdout, c.Stderr = stdout, stderr
	if err := c.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return silentExit(ee.ExitCode())
		}
		return failed(err)
	}
	return nil
}

// firstBackup runs the new policy now and verifies what it stored.
func firstBackup(ctx context.Context, stdout, stderr io.Writer, g *globals, a *setup.Answers) error {
	if err := runSelf(ctx, stdout, stderr, g, "run", a.Policy); err != nil {
		return err
	}
	args := []string{"verify", a.Policy}
	if a.Encryption.Mode == "age" && a.Encryption.IdentityFile != "" {
		args = append(args, "--identity", a.Encryption.IdentityFile)
	}
	return runSelf(ctx, stdout, stderr, g, args...)
}
