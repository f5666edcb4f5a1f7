package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"filippo.io/age"
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
	var kind, out string
	gen := &cobra.Command{
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
			now := time.Now().UTC()
			body, public, id, err := newKey(kind, now)
			if err != nil {
				return err
			}
			if out == "" {
				out = filepath.Join(g.keysDir, id+".key")
			}
			err = writeNewSecret(out, body)
			g.audit(observe.AuditEvent{Action: observe.AuditKeyGenerated, Object: "Key/" + id, KeyID: id, File: absPath(out),
				Outcome: outcomeOf(err), Message: messageOf(err)})
			if err != nil {
				return failed(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s key %s (mode 0600)\n", kind, out)
			if public != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "public key (the policy's recipient): %s\n", public)
				fmt.Fprintln(cmd.OutOrStdout(), "store a copy of this identity file somewhere safe, off this host: without it no backup can be restored")
			}
			return nil
		},
	}
	gen.Flags().StringVar(&kind, "kind", "age", "age or openssl")
	gen.Flags().StringVar(&out, "out", "", "file to write (default KEYS_DIR/ID.key); never overwritten")

	var asJSON bool
	list := &cobra.Command{
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
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tKIND\tCREATED\tFINGERPRINT\tFILE")
				for _, k := range keys {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Kind, k.Created.Format(time.DateTime), k.Fingerprint, k.File)
				}
				tw.Flush()
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
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	rotate := &cobra.Command{
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
	cmd.AddCommand(gen, list, rotate)
	return cmd
}

// newKey makes the body of a new key file, its public key (age) and its ID.
func newKey(kind string, now time.Time) (body []byte, public, id string, err error) {
	switch kind {
	case snapshot.KeyKindAge:
		ident, err := age.GenerateX25519Identity()
		if err != nil {
			return nil, "", "", failed(err)
		}
		public = ident.Recipient().String()
		body = fmt.Appendf(nil, "# created: %s\n# public key: %s\n%s\n", now.UTC().Format(time.RFC3339), public, ident.String())
		return body, public, snapshot.AgeKeyID(public), nil
	case snapshot.KeyKindOpenSSL:
		var k [32]byte
		if _, err := rand.Read(k[:]); err != nil {
			return nil, "", "", failed(err)
		}
		pass := hex.EncodeToString(k[:])
		return []byte(pass + "\n"), "", snapshot.OpenSSLKeyID([]byte(pass)), nil
	}
	return nil, "", "", invalid(fmt.Errorf("--kind: %q is not age or openssl", kind))
}

func rotateKey(w io.Writer, g *globals, policy string) error {
	cfg, err := reconcile.LoadConfig(g.configDir)
	if err != nil {
		return invalid(err)
	}
	p := cfg.Policy(policy)
	if p == nil {
		return invalid(fmt.Errorf("policy %q not found in %s", policy, g.configDir))
	}
	enc := p.Spec.Encryption
	now := time.Now()
	switch {
	case enc != nil && enc.OpenSSL != nil:
		keyFile := enc.OpenSSL.KeyFile
		old, _, _, err := snapshot.ReadKeyFile(keyFile)
		if err != nil {
			return failed(err)
		}
		oldBody, err := os.ReadFile(keyFile)
		if err != nil {
			return failed(err)
		}
		archive := filepath.Join(g.keysDir, old.ID+".key")
		if _, err := os.Stat(archive); os.IsNotExist(err) {
			if err := writeNewSecret(archive, oldBody); err != nil {
				return failed(fmt.Errorf("keep the old key: %w", err))
			}
		}
		body, _, id, err := newKey(snapshot.KeyKindOpenSSL, now)
		if err != nil {
			return err
		}
		if err := replaceSecret(keyFile, body); err != nil {
			return failed(err)
		}
		fmt.Fprintf(w, "policy %s: new snapshots use openssl key %s (in %s); the old key %s is kept as %s for restores\n", policy, id, keyFile, old.ID, archive)
		g.audit(observe.AuditEvent{Action: observe.AuditKeyRotated, Object: "BackupPolicy/" + policy, Policy: policy, KeyID: id, File: keyFile,
			Outcome: observe.OutcomeSuccess, Message: "openssl key " + old.ID + " replaced; kept as " + archive + " for restores"})
		return nil
	case enc != nil && enc.Age != nil:
		body, public, id, err := newKey(snapshot.KeyKindAge, now)
		if err != nil {
			return err
		}
		idFile := filepath.Join(g.keysDir, id+".key")
		if err := writeNewSecret(idFile, body); err != nil {
			return failed(err)
		}
		fmt.Fprintf(w, "wrote age identity %s (%s); store a copy somewhere safe, off this host\n", id, idFile)
		if enc.Age.RecipientsFile == "" {
			fmt.Fprintf(w, "policy %s lists its recipients inline: to rotate, replace the old recipient with\n  %s\nin spec.encryption.age.recipients of the manifest\n", policy, public)
			g.audit(observe.AuditEvent{Action: observe.AuditKeyRotated, Object: "BackupPolicy/" + policy, Policy: policy, KeyID: id, File: idFile,
				Outcome: observe.OutcomePartial, Message: "new age identity written; the manifest's inline recipients must be changed by hand"})
			return nil
		}
		managed := map[string]bool{}
		keys, _ := snapshot.ListKeys(g.keysDir)
		for _, k := range keys {
			if k.Kind == snapshot.KeyKindAge && k.ID != id {
				managed[k.Fingerprint] = true
			}
		}
		old, err := os.ReadFile(enc.Age.RecipientsFile)
		if err != nil {
			return failed(err)
		}
		var lines []string
		for _, line := range strings.Split(strings.TrimRight(string(old), "\n"), "\n") {
			if managed[strings.TrimSpace(line)] {
				lines = append(lines, "# rotated out "+now.UTC().Format(time.RFC3339)+": "+strings.TrimSpace(line))
				continue
			}
			lines = append(lines, line)
		}
		lines = append(lines, public)
		if err := replaceFile(enc.Age.RecipientsFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			return failed(err)
		}
		fmt.Fprintf(w, "policy %s: new snapshots are encrypted to %s (%s); old identities stay in %s for restores\n", policy, id, enc.Age.RecipientsFile, g.keysDir)
		g.audit(observe.AuditEvent{Action: observe.AuditKeyRotated, Object: "BackupPolicy/" + policy, Policy: policy, KeyID: id, File: enc.Age.RecipientsFile,
			Outcome: observe.OutcomeSuccess, Message: "new age recipient " + id + " in " + enc.Age.RecipientsFile + "; identity " + idFile})
		return nil
	}
	return invalid(fmt.Errorf("policy %s is not encrypted: nothing to rotate", policy))
}

// replaceSecret atomically replaces a key file, keeping mode 0600.
func replaceSecret(name string, body []byte) error { return replaceFile(name, body, 0o600) }

func replaceFile(name string, body []byte, mode os.FileMode) error {
	tmp := name + ".aegis-new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(body); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, name)
}

// writeNewSecret creates name with mode 0600, refusing to overwrite.
func writeNewSecret(name string, body []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s already exists: not overwriting a key", name)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(body); err != nil {
		f.Close()
		os.Remove(name)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
