package main

import "github.com/spf13/cobra"

func newInitCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "init",
		Short:   "The guided setup: asks, validates each answer, writes manifests",
		Example: "  aegis-agent init",
		Args:    cobra.NoArgs,
		RunE:    func(*cobra.Command, []string) error { return notYet("init") },
	}
}
