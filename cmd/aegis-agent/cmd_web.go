package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/aegis-backup/aegis/reconcile"
	"github.com/aegis-backup/aegis/reconcile/observe"
	"github.com/aegis-backup/aegis/reconcile/web"
)

// webFlags are the flags of the web console.
type webFlags struct {
	addr         string
	tlsCert      string
	tlsKey       string
	users        string
	proxyHeader  string
	trustedProxy []string
	insecure     bool

	// progress hears the agent's runs when the console is on.
	progress *web.Progress
}

// defaultWebAddr is where `aegis-agent web` listens without --web-addr.
const defaultWebAddr = "127.0.0.1:9918"

func (w *webFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&w.addr, "web-addr", envOr("AEGIS_WEB_ADDR", ""), "serve the web console on this address, such as 127.0.0.1:9918 (default off; off loopback it needs TLS) (env AEGIS_WEB_ADDR)")
	fs.StringVar(&w.tlsCert, "web-tls-cert", envOr("AEGIS_WEB_TLS_CERT", ""), "TLS certificate of the web console (env AEGIS_WEB_TLS_CERT)")
	fs.StringVar(&w.tlsKey, "web-tls-key", envOr("AEGIS_WEB_TLS_KEY", ""), "TLS key of the web console (env AEGIS_WEB_TLS_KEY)")
	fs.StringVar(&w.users, "web-users", envOr("AEGIS_WEB_USERS", "/etc/aegis/web-users"), "the web console's users and password hashes, mode 0600 (env AEGIS_WEB_USERS)")
	fs.StringVar(&w.proxyHeader, "web-proxy-user-header", envOr("AEGIS_WEB_PROXY_USER_HEADER", ""), "trust this header (such as X-Forwarded-User) to name the user, from --web-trusted-proxy only (default off) (env AEGIS_WEB_PROXY_USER_HEADER)")
	fs.StringSliceVar(&w.trustedProxy, "web-trusted-proxy", splitEnv("AEGIS_WEB_TRUSTED_PROXY"), "addresses (CIDR) of the reverse proxy whose user header is trusted (env AEGIS_WEB_TRUSTED_PROXY)")
	fs.BoolVar(&w.insecure, "web-insecure-cookies", false, "send the session cookie without the Secure attribute (plain HTTP on loopback with a browser that needs it)")
}

func splitEnv(name string) []string {
	v := os.Getenv(name)
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// observe adds the console's progress to the agent's options when the
// console is on.
func (w *webFlags) observe(o reconcile.ObserveOptions) reconcile.ObserveOptions {
	if w.addr == "" {
		return o
	}
	w.progress = web.NewProgress()
	o.Progress = observe.MultiProgress(o.Progress, w.progress)
	return o
}

func (w *webFlags) proxy() (web.ProxyAuth, error) {
	p := web.ProxyAuth{Header: w.proxyHeader}
	if p.Header == "" {
		return p, nil
	}
	if len(w.trustedProxy) == 0 {
		return p, errors.New("--web-proxy-user-header needs --web-trusted-proxy: the addresses of the proxy")
	}
	for _, s := range w.trustedProxy {
		pre, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			a, aerr := netip.ParseAddr(strings.TrimSpace(s))
			if aerr != nil {
				return p, fmt.Errorf("--web-trusted-proxy %q: %w", s, err)
			}
			pre = netip.PrefixFrom(a, a.BitLen())
		}
		p.Trusted = append(p.Trusted, pre)
	}
	return p, nil
}

// serveWeb starts the console of the agent, when asked for.
func serveWeb(ctx context.Context, g *globals, a *reconcile.Agent, log *slog.Logger) error {
	if g.web.addr == "" {
		return nil
	}
	return startWeb(ctx, g, a, false, nil, log)
}

// startWeb builds the console and serves it on --web-addr.
func startWeb(ctx context.Context, g *globals, a *reconcile.Agent, fleetOnly bool, fleet []string, log *slog.Logger) error {
	proxy, err := g.web.proxy()
	if err != nil {
		return invalid(err)
	}
	host, err := os.Hostname()
	if err != nil {
		return failed(err)
	}
	opts := web.Options{ConfigDir: g.configDir, StateDir: g.stateDir, StatusDir: g.statusDir, LogDir: g.logDir, KeysDir: g.keysDir,
		Host: host, UsersFile: g.web.users, Proxy: proxy, Fleet: fleet, FleetOnly: fleetOnly, Progress: g.web.progress,
		InsecureCookies: g.web.insecure, Logger: log}
	if a != nil {
		opts.Agent = a
	}
	if g.logDir != "" && !fleetOnly {
		limits, _ := g.logLimits()
		al, err := observe.OpenAudit(g.logDir, limits, host, "web", nil)
		if err != nil {
			return failed(fmt.Errorf("web console audit log: %w", err))
		}
		go func() { <-ctx.Done(); al.Close() }()
		opts.Audit = al
	}
	srv, err := web.New(ctx, opts)
	if err != nil {
		return invalid(err)
	}
	addr, err := srv.Serve(ctx, g.web.addr, g.web.tlsCert, g.web.tlsKey)
	if err != nil {
		return invalid(err)
	}
	scheme := "http"
	if g.web.tlsCert != "" {
		scheme = "https"
	}
	log.Info("serving the web console", "url", scheme+"://"+addr.String()+"/")
	return nil
}

func newWebCommand(g *globals) *cobra.Command {
	var fleet []string
	cmd := &cobra.Command{
		Use:   "web",
		Short: "Serve the web console without running the agent's schedule",
		Long: `web serves the console of this host (its policies, snapshots and
actions) without running schedules; with --fleet it serves, read-only and
without policies, the fleet view of every host that writes its status to
the named destinations.`,
		Example: `  aegis-agent web user add alice --role operator
  aegis-agent web --web-addr 127.0.0.1:9918
  aegis-agent web --fleet offsite`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runWeb(cmd.Context(), g, fleet)
		},
	}
	g.web.register(cmd.Flags())
	cmd.Flags().StringSliceVar(&fleet, "fleet", nil, "serve the read-only fleet view of these destinations (names of Destination manifests)")
	cmd.AddCommand(newWebUserCommand(g))
	return cmd
}

func runWeb(ctx context.Context, g *globals, fleet []string) error {
	log, closeLog, err := g.logger(false)
	if err != nil {
		return err
	}
	defer closeLog()
	if g.web.addr == "" {
		g.web.addr = defaultWebAddr
	}
	var a *reconcile.Agent
	if len(fleet) == 0 {
		g.web.progress = web.NewProgress()
		opts := g.observeOptions()
		opts.Progress = observe.MultiProgress(opts.Progress, g.web.progress)
		if a, err = g.agentWith(log, opts); err != nil {
			return err
		}
		defer a.Close()
	}
	if err := startWeb(ctx, g, a, len(fleet) > 0, fleet, log); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// agentWith is g.agent with other observe options.
func (g *globals) agentWith(log *slog.Logger, o reconcile.ObserveOptions) (*reconcile.Agent, error) {
	a, err := reconcile.New(reconcile.Options{ConfigDir: g.configDir, StateDir: g.stateDir, LogDir: g.logDir, StatusDir: g.statusDir,
		Logger: log, MaxConcurrentRuns: g.maxRuns, SourceConcurrency: g.maxSources, Observe: o})
	if err != nil {
		return nil, failed(err)
	}
	return a, nil
}

func newWebUserCommand(g *globals) *cobra.Command {
	user := &cobra.Command{Use: "user", Short: "Manage the web console's users",
		Example: "  aegis-agent web user add alice --role operator"}
	var role string
	var fromStdin bool
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a user, or change a user's password and role",
		Long: `add writes NAME with a bcrypt hash of its password to the users file
(--web-users, mode 0600). The password is asked on the terminal, or read
from the first line of standard input with --password-stdin.`,
		Example: `  aegis-agent web user add alice --role operator
  printf '%s\n' "$PASSWORD" | aegis-agent web user add ci --role viewer --password-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pass, err := readNewPassword(cmd.InOrStdin(), cmd.ErrOrStderr(), fromStdin)
			if err != nil {
				return invalid(err)
			}
			if err := web.AddUser(g.web.users, args[0], role, pass); err != nil {
				return invalid(err)
			}
			g.audit(observe.AuditEvent{Action: "web.user.added", Object: "WebUser/" + args[0], Outcome: observe.OutcomeSuccess, File: g.web.users, Message: "role " + role})
			fmt.Fprintf(cmd.OutOrStdout(), "user %s (%s) written to %s\n", args[0], role, g.web.users)
			return nil
		},
	}
	add.Flags().StringVar(&role, "role", web.RoleViewer, "viewer (reads) or operator (also runs, verifies, prunes and restores)")
	add.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of standard input")
	user.PersistentFlags().StringVar(&g.web.users, "web-users", envOr("AEGIS_WEB_USERS", "/etc/aegis/web-users"), "the users file (env AEGIS_WEB_USERS)")
	user.AddCommand(add)
	return user
}

// readNewPassword reads a password twice from the terminal, or once from
// the first line of in.
func readNewPassword(in io.Reader, out io.Writer, fromStdin bool) ([]byte, error) {
	f, isFile := in.(*os.File)
	if fromStdin || !isFile || !term.IsTerminal(int(f.Fd())) {
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read the password: %w", err)
		}
		return []byte(strings.TrimRight(line, "\r\n")), nil
	}
	fmt.Fprint(out, "Password: ")
	p1, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(out)
	if err != nil {
		return nil, fmt.Errorf("read the password: %w", err)
	}
	fmt.Fprint(out, "Again: ")
	p2, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(out)
	if err != nil {
		return nil, fmt.Errorf("read the password: %w", err)
	}
	if string(p1) != string(p2) {
		return nil, errors.New("the passwords differ")
	}
	return p1, nil
}
