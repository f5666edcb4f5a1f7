package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/aegis-backup/aegis/reconcile/observe"
)

// versionText is what `aegis-agent version` and `aegis-agent --version`
// print: the version, the commit and the Go version the binary was built
// from, as the aegis_build_info metric and the User-Agent say them.
func versionText() string {
	b := observe.Build()
	return fmt.Sprintf("aegis-agent %s\ncommit: %s\ngo: %s\n", b.Version, b.Commit, b.GoVersion)
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version, commit and Go version of this binary",
		Example: "  aegis-agent version\n  aegis-agent --version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprint(cmd.OutOrStdout(), versionText())
			return nil
		},
	}
}

// setVersion makes --version print what the version command prints.
func setVersion(root *cobra.Command) {
	root.Version = observe.Build().Version
	root.SetVersionTemplate(versionText())
}
