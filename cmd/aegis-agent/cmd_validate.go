package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/aegis-backup/aegis/reconcile"
)

func newValidateCommand(g *globals) *cobra.Command {
	var offline bool
	cmd := &cobra.Command{
		Use:   "validate [PATH...]",
		Short: "Check manifests without touching anything",
		Long: `Check manifest files (or the manifest files of directories) and print every
problem at once, each as FILE:LINE: Kind/name: field.path: message.
Exit code 0 when all are valid, 2 otherwise.

--offline checks what can be checked away from the backup host (schema,
names, references, rules across objects) and no file the manifests name
(keys, secrets, recipients): for GitOps CI.`,
		Example: `  aegis-agent validate                          # the config directory
  aegis-agent validate ./policies/ web.yaml
  aegis-agent validate --offline ./policies/    # in CI, not on the host`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{g.configDir}
			}
			cfg, err := reconcile.LoadConfigWith(reconcile.LoadOptions{Offline: offline}, args...)
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
	cmd.Flags().BoolVar(&offline, "offline", false, "check no file the manifests reference (CI away from the backup host)")
	return cmd
}
