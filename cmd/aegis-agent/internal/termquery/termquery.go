// Package termquery keeps Bubble Tea's start-up terminal query out of every
// command but the guided setup.
//
// Bubble Tea's package init asks the terminal for its background colour
// (an OSC 11 query, then a cursor position report as a fence) and waits up
// to five seconds for the answer. Every aegis-agent command links Bubble
// Tea, for init's wizard, so without this package every command run on a
// terminal that does not answer (a pty under a test, a serial console)
// stalls for five seconds and leaves the query's escape codes in its
// output.
//
// Go initializes packages in dependency order, and among those ready picks
// the one whose import path sorts first. This package needs only Lip Gloss,
// which Bubble Tea needs too, and its path sorts before Bubble Tea's, so its
// init runs first: when the command line is not the guided setup, it fixes
// the answer (dark, Lip Gloss's own default) and Bubble Tea's init then asks
// nothing. The guided setup keeps the query, for its colours.
package termquery

import (
	"os"

	"github.com/charmbracelet/lipgloss"
)

func init() {
	if !WizardRequested(os.Args[1:]) {
		lipgloss.SetHasDarkBackground(true)
	}
}

// WizardRequested reports whether args (the command line without the
// program's name) may start init's guided setup: the word init is among
// them, and none of --non-interactive, --dry-run and --help is. It errs on
// the side of the wizard: a flag value spelled "init" only costs the query.
func WizardRequested(args []string) bool {
	wizard := false
	for _, a := range args {
		switch {
		case a == "--":
			return wizard
		case a == "init":
			wizard = true
		case hasFlag(a, "--non-interactive"), hasFlag(a, "--dry-run"), a == "--help", a == "-h":
			return false
		}
	}
	return wizard
}

// hasFlag reports whether arg is the boolean flag name, alone or as
// name=true.
func hasFlag(arg, name string) bool {
	return arg == name || arg == name+"=true"
}
