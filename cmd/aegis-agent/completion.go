package main

import (
	"sort"
	"strings"

	"github.com/spf13/cobra"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/reconcile"
)

// flagValues are the fixed values of the flags that take one of a few
// words, for completion.
var flagValues = map[string][]string{
	"encryption": {"age", "openssl", "none"},
	"log-format": {"text", "json"},
	"log-level":  {"debug", "info", "warn", "error"},
	"priority":   {"low", "normal"},
}

// policyCommands take a policy name as their first argument.
var policyCommands = map[string]bool{"run": true, "snapshots": true, "restore": true, "verify": true, "prune": true, "rotate": true}

// completeCommands teaches shell completion the names in the config
// directory (policies as arguments, --destination, --from, --source) and
// the values of the flags that take one of a few words.
func completeCommands(root *cobra.Command, g *globals) {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if policyCommands[c.Name()] && c.ValidArgsFunction == nil {
			c.ValidArgsFunction = func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
				if len(args) > 0 {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				return g.completeNames(v1.KindBackupPolicy), cobra.ShellCompDirectiveNoFileComp
			}
		}
		registerFlagCompletions(c, g)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func registerFlagCompletions(c *cobra.Command, g *globals) {
	for name, values := range flagValues {
		if c.LocalNonPersistentFlags().Lookup(name) != nil || (c == c.Root() && c.PersistentFlags().Lookup(name) != nil) {
			c.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
		}
	}
	for _, name := range []string{"destination", "from"} {
		if c.LocalNonPersistentFlags().Lookup(name) != nil && c.Name() != "init" {
			c.RegisterFlagCompletionFunc(name, func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
				return g.completeNames(v1.KindDestination), cobra.ShellCompDirectiveNoFileComp
			})
		}
	}
	if c.LocalNonPersistentFlags().Lookup("source") != nil && c.Name() != "init" {
		c.RegisterFlagCompletionFunc("source", func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return g.completeSources(args), cobra.ShellCompDirectiveNoFileComp
		})
	}
}

// completeNames lists the objects of kind in the config directory, valid
// or not, and those known by their last valid version.
func (g *globals) completeNames(kind string) []cobra.Completion {
	cfg, err := reconcile.LoadConfigWithState(g.configDir, g.stateDir)
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	for _, o := range append(cfg.LastValidOnly(kind), cfg.Objects...) {
		if o.Kind == kind {
			seen[o.Name] = true
		}
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// completeSources lists the sources of the policy named in args.
func (g *globals) completeSources(args []string) []cobra.Completion {
	if len(args) == 0 {
		return nil
	}
	cfg, err := reconcile.LoadConfigWithState(g.configDir, g.stateDir)
	if err != nil {
		return nil
	}
	p := cfg.Policy(args[0])
	if p == nil {
		return nil
	}
	var out []string
	for _, s := range p.Spec.Sources {
		out = append(out, s.Name)
	}
	return out
}

// trimCompletionCommands removes the completion commands of shells whose
// scripts make install does not install (PowerShell), so that no man page
// documents them.
func trimCompletionCommands(root *cobra.Command) {
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		for _, sub := range c.Commands() {
			if !strings.Contains(" bash zsh fish ", " "+sub.Name()+" ") {
				c.RemoveCommand(sub)
			}
		}
	}
}
