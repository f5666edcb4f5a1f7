package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aegis-backup/aegis/reconcile"
	"github.com/aegis-backup/aegis/reconcile/observe"
	"github.com/aegis-backup/aegis/reconcile/snapshot"
)

func newKeysCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage encryption keys",
	}
	cmd.AddCommand(newKeysGenerateCommand(g), newKeysListCommand(g), newKeysRotateCommand(g))
	return cmd
}

func newKeysGenerateCommand(g *globals) *cobra.Command {
	var kind, out string
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Create a new key file (mode 0600)",
		Long: `Create an age identity (its public key, the recipient, goes into the policy;
the identity itself is only needed to restore, so keep a copy somewhere safe
and off this host), or an openssl key file of 64 hex characters on one line
(what openssl enc -pass file: reads).`,
		Example: `  aegis-agent keys generate                         # age, under /etc/aegis/keys
  aegis-agent keys generate --kind openssl --out /etc/aegis/keys/openssl.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return generateKey(cmd.OutOrStdout(), g, kind, out)
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "age", "age or openssl")
	cmd.Flags().StringVar(&out, "out", "", "file to write (default KEYS_DIR/ID.key); never overwritten")
	return cmd
}

// generateKey writes a new key of kind to out (default KEYS_DIR/ID.key)
// and audits it.
func generateKey(w io.Writer, g *globals, kind, out string) error {
	k, err := snapshot.GenerateKey(kind, time.Now())
	if errors.Is(err, snapshot.ErrUnknownKeyKind) {
		return invalid(fmt.Errorf("--kind: %q is not age or openssl", kind))
	}
	if err != nil {
		return failed(err)
	}
	if out == "" {
		out = filepath.Join(g.keysDir, k.ID+".key")
	}
	err = snapshot.WriteNewKeyFile(out, k.Body)
	g.audit(observe.AuditEvent{Action: observe.AuditKeyGenerated, Object: "Key/" + k.ID, KeyID: k.ID, File: absPath(out),
		Outcome: outcomeOf(err), Message: messageOf(err)})
	if err != nil {
		return failed(err)
	}
	fmt.Fprintf(w, "wrote %s key %s (mode 0600)\n", kind, out)
	if k.Public != "" {
		fmt.Fprintf(w, "public key (the policy's recipient): %s\n", k.Public)
		fmt.Fprintln(w, "store a copy of this identity file somewhere safe, off this host: without it no backup can be restored")
	}
	return nil
}

func newKeysListCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the key files of the keys directory (never their secrets)",
		Example: "  aegis-agent keys list\n  aegis-agent keys list --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			keys, errs := snapshot.ListKeys(g.keysDir)
			if asJSON {
				if keys == nil {
					keys = []snapshot.KeyInfo{}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				_ = enc.Encode(keys)
			} else {
				printKeys(cmd.OutOrStdout(), keys)
			}
			for _, err := range errs {
				fmt.Fprintln(cmd.ErrOrStderr(), "aegis-agent: skipped:", err)
			}
			if len(errs) > 0 {
				return silentExit(exitFailed)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printKeys(w io.Writer, keys []snapshot.KeyInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tCREATED\tFINGERPRINT\tFILE")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Kind, k.Created.Format(time.DateTime), k.Fingerprint, k.File)
	}
	tw.Flush()
}

func newKeysRotateCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate POLICY",
		Short: "Make a new key the one a policy encrypts new snapshots with",
		Long: `Create a new key for a policy. Old keys stay in the keys directory, so
snapshots made before the rotation still restore: every snapshot manifest
records the ID of the key it was written with, and restore picks it.

openssl: the policy's keyFile gets the new key; the old one is kept as
KEYS_DIR/ID.key. age with a recipientsFile: the new recipient replaces, in
that file, the recipients whose identity is in the keys directory (recipients
kept elsewhere, such as an offline escrow key, stay). age with inline
recipients: the new identity is written and the command prints the line to
change in the manifest, which is yours (often in Git).`,
		Example: "  aegis-agent keys rotate web",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := rotateKey(cmd.OutOrStdout(), g, args[0])
			if err != nil {
				g.audit(observe.AuditEvent{Action: observe.AuditKeyRotated, Object: "BackupPolicy/" + args[0], Policy: args[0],
					Outcome: observe.OutcomeFailure, Message: err.Error()})
			}
			return err
		},
	}
}

// rotateKey rotates the key of policy, says what it did and audits it.
func rotateKey(w io.Writer, g *globals, policy string) error {
	cfg, err := reconcile.LoadConfig(g.configDir)
	if err != nil {
		return invalid(err)
	}
	p := cfg.Policy(policy)
	if p == nil {
		return invalid(fmt.Errorf("policy %q not found in %s", policy, g.configDir))
	}
	r, err := snapshot.RotateKey(p, snapshot.RotateOptions{KeysDir: g.keysDir})
	if r != nil && r.Kind == snapshot.KeyKindAge {
		fmt.Fprintf(w, "wrote age identity %s (%s); store a copy somewhere safe, off this host\n", r.KeyID, r.IdentityFile)
	}
	switch {
	case errors.Is(err, snapshot.ErrNotEncrypted):
		return invalid(err)
	case err != nil:
		return failed(err)
	}
	ev := observe.AuditEvent{Action: observe.AuditKeyRotated, Object: "BackupPolicy/" + policy, Policy: policy, KeyID: r.KeyID, File: r.File,
		Outcome: observe.OutcomeSuccess}
	switch {
	case r.Kind == snapshot.KeyKindOpenSSL:
		fmt.Fprintf(w, "policy %s: new snapshots use openssl key %s (in %s); the old key %s is kept as %s for restores\n", policy, r.KeyID, r.File, r.OldKeyID, r.Archive)
		ev.Message = "openssl key " + r.OldKeyID + " replaced; kept as " + r.Archive + " for restores"
	case r.Manual:
		fmt.Fprintf(w, "policy %s lists its recipients inline: to rotate, replace the old recipient with\n  %s\nin spec.encryption.age.recipients of the manifest\n", policy, r.Public)
		ev.Outcome, ev.Message = observe.OutcomePartial, "new age identity written; the manifest's inline recipients must be changed by hand"
	default:
		fmt.Fprintf(w, "policy %s: new snapshots are encrypted to %s (%s); old identities stay in %s for restores\n", policy, r.KeyID, r.File, g.keysDir)
		ev.Message = "new age recipient " + r.KeyID + " in " + r.File + "; identity " + r.IdentityFile
	}
	g.audit(ev)
	return nil
}
