package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"
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
			if out == "" {
				out = filepath.Join("/etc/aegis/keys", fmt.Sprintf("%s-%s.key", kind, now.Format("20060102T150405Z")))
			}
			var body []byte
			var public string
			switch kind {
			case "age":
				id, err := age.GenerateX25519Identity()
				if err != nil {
					return failed(err)
				}
				public = id.Recipient().String()
				body = fmt.Appendf(nil, "# created: %s\n# public key: %s\n%s\n", now.Format(time.RFC3339), public, id.String())
			case "openssl":
				var k [32]byte
				if _, err := rand.Read(k[:]); err != nil {
					return failed(err)
				}
				body = []byte(hex.EncodeToString(k[:]) + "\n")
			default:
				return invalid(fmt.Errorf("--kind: %q is not age or openssl", kind))
			}
			if err := writeNewSecret(out, body); err != nil {
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
	gen.Flags().StringVar(&out, "out", "", "file to write (default /etc/aegis/keys/KIND-TIME.key); never overwritten")
	cmd.AddCommand(gen)
	return cmd
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
