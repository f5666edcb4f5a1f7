package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func notYet(what string) error {
	return invalid(fmt.Errorf("%s is not supported yet by this build of aegis-agent", what))
}

func newPruneCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "prune [POLICY]",
		Short:   "Apply retention now",
		Example: "  aegis-agent prune web --dry-run",
		Args:    cobra.MaximumNArgs(1),
		RunE:    func(*cobra.Command, []string) error { return notYet("prune") },
	}
	cmd.Flags().Bool("dry-run", false, "show what would be deleted")
	cmd.Flags().Bool("json", false, "print JSON")
	return cmd
}
