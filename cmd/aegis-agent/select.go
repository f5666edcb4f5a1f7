package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/drivers"
	"github.com/aegis-backup/aegis/drivers/ratelimit"
	"github.com/aegis-backup/aegis/reconcile"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

// selectOpts are the flags that choose a snapshot.
type selectOpts struct {
	snapshot         string
	source           string
	from             string
	host             string
	identities       []string
	passphraseFile   string
	allowUnencrypted bool
	// limit caps the read rate (restore --limit); empty: the manifest's.
	limit string
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

// limited applies --limit to d: a fixed read rate in place of the
// destination's bandwidth schedule.
func (s *selectOpts) limited(d drivers.Destination) (drivers.Destination, error) {
	if s.limit == "" {
		return d, nil
	}
	bps, err := v1.ParseBandwidth(s.limit)
	if err != nil {
		d.Close()
		return nil, invalid(fmt.Errorf("--limit: %w", err))
	}
	if l, ok := d.(*ratelimit.Destination); ok {
		d = l.Unwrap()
	}
	if bps == 0 {
		return d, nil
	}
	return ratelimit.NewFixed(d, bps, ratelimit.Options{}), nil
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
		if d, err = s.limited(d); err != nil {
			return nil, nil, err
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
