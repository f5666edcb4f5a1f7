package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/spf13/cobra"
)

// asAgentEnv makes the test binary act as aegis-agent, so that tests can
// run a command in a process of its own (its package inits, its exit code)
// exactly as the built binary runs it.
const asAgentEnv = "AEGIS_TEST_AS_AGENT"

func TestMain(m *testing.M) {
	if os.Getenv(asAgentEnv) == "1" {
		os.Exit(run(context.Background(), os.Args[1:]))
	}
	os.Exit(m.Run())
}

// agentCommand is aegis-agent ARGS, run by this test binary.
func agentCommand(ctx context.Context, t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := exec.CommandContext(ctx, exe, args...)
	c.Env = append(os.Environ(), asAgentEnv+"=1")
	return c
}

// TestNoTerminalQueryOutsideInit runs commands on a terminal that never
// answers: they must neither send the background colour query of the UI
// libraries linked in for init's wizard (whose answer they would wait for)
// nor leave its escape codes in their output.
func TestNoTerminalQueryOutsideInit(t *testing.T) {
	config := t.TempDir()
	for _, args := range [][]string{
		{"validate", config},
		{"--config-dir", config, "status"},
		{"--config-dir", config, "init", "--non-interactive", "--dry-run", "--skip-checks"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			// A guard against a hang, not the assertion.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c := agentCommand(ctx, t, args...)
			tty, err := pty.StartWithSize(c, &pty.Winsize{Rows: 24, Cols: 80})
			if err != nil {
				t.Fatal(err)
			}
			defer tty.Close()
			out, _ := io.ReadAll(tty) // until the command exits (EIO)
			err = c.Wait()
			if ctx.Err() != nil {
				t.Fatalf("%q did not return: %q", args, out)
			}
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			for _, query := range []string{"\x1b]11;?", "\x1b[6n"} {
				if strings.Contains(string(out), query) {
					t.Errorf("%q asked the terminal %q:\n%q", args, query, out)
				}
			}
		})
	}
}

// TestEveryCommandHasAnExample keeps --help useful as commands are added.
func TestEveryCommandHasAnExample(t *testing.T) {
	root := newRootCommand()
	missing := []string{}
	var visit func(prefix string, c *cobra.Command)
	visit = func(prefix string, c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		if c.Example == "" {
			missing = append(missing, strings.TrimSpace(prefix+" "+c.Name()))
		}
		for _, sub := range c.Commands() {
			visit(prefix+" "+c.Name(), sub)
		}
	}
	visit("", root)
	if len(missing) > 0 {
		t.Errorf("commands without an example in --help: %v", missing)
	}
}
