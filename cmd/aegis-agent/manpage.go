package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aegis-backup/aegis/reconcile/observe"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newManCommand writes the man pages, generated from the command
// definitions so that they never drift from --help. `make install`
// installs them; it is hidden because users read the pages, not make them.
func newManCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:     "man",
		Short:   "Write the man pages (aegis-agent.1 and one per command) into a directory",
		Example: "  aegis-agent man --dir /usr/local/share/man/man1",
		Hidden:  true,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return failed(err)
			}
			// Reproducible pages: the date comes from SOURCE_DATE_EPOCH
			// when the build sets it.
			date := time.Now()
			if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
				if n, err := strconv.ParseInt(s, 10, 64); err == nil {
					date = time.Unix(n, 0).UTC()
				}
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			forEachCommand(root, func(c *cobra.Command) { c.Long = manLong(c.Long) })
			// No Title: each page is titled with its own command
			// (AEGIS-AGENT-RESTORE).
			header := &doc.GenManHeader{
				Section: "1",
				Source:  "Aegis " + observe.Version,
				Manual:  "Aegis manual",
				Date:    &date,
			}
			if err := doc.GenManTree(root, header, dir); err != nil {
				return failed(fmt.Errorf("man pages: %w", err))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote man pages into %s\n", dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "man", "directory to write the pages into")
	return cmd
}

// documentCommands finishes the command tree for --help, completion and
// the man pages: cobra's completion command is made now (it is otherwise
// added only when the program runs) so that it is in the man pages, and
// every command gets an example.
func documentCommands(root *cobra.Command) {
	root.AddCommand(newManCommand())
	root.InitDefaultCompletionCmd()
	examples := map[string]string{
		"completion": `  source <(aegis-agent completion bash)        # this shell only
  aegis-agent completion bash > /etc/bash_completion.d/aegis-agent
  aegis-agent completion zsh > "${fpath[1]}/_aegis-agent"
  aegis-agent completion fish > ~/.config/fish/completions/aegis-agent.fish`,
		"bash": "  aegis-agent completion bash > /etc/bash_completion.d/aegis-agent",
		"zsh":  `  aegis-agent completion zsh > "${fpath[1]}/_aegis-agent"`,
		"fish": "  aegis-agent completion fish > ~/.config/fish/completions/aegis-agent.fish",
		"keys": "  aegis-agent keys generate\n  aegis-agent keys list",
	}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example == "" {
			c.Example = examples[c.Name()]
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// manLong makes the indented lines of a command's long help (a syntax
// block, say) a literal block of the page: as they are, troff would fill
// and justify them into the paragraph before.
func manLong(long string) string {
	var b strings.Builder
	prevIndented, prevBlank := false, true
	for _, line := range strings.Split(long, "\n") {
		indented := strings.HasPrefix(line, " ") && strings.TrimSpace(line) != ""
		blank := strings.TrimSpace(line) == ""
		if indented != prevIndented && !blank && !prevBlank {
			b.WriteString("\n")
		}
		if indented {
			line = "    " + line
		}
		b.WriteString(line + "\n")
		if !blank {
			prevIndented = indented
		}
		prevBlank = blank
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// forEachCommand calls fn on c and every command below it.
func forEachCommand(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		forEachCommand(sub, fn)
	}
}
